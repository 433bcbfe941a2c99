"""Logging and error text for people: configured once by the CLI, the DAG tasks and the dashboard.

Without debug (``--debug`` on the root command, or ``SOUNDMATES_DEBUG=1``) a failure that the
code handled is logged as one line (``... (ValueError: why)``), never as a traceback; with debug,
tracebacks are kept everywhere.
"""

from __future__ import annotations

import logging
import os
import sys
import unicodedata

__all__ = ["configure_logging", "describe", "is_debug", "one_line", "set_debug"]

DEBUG_ENV = "SOUNDMATES_DEBUG"
_MAX_LINE = 400
_debug_flag: bool | None = None  # set by the CLI's --debug; None = ask the environment
_factory_installed = False
_handler: logging.Handler | None = None


def is_debug() -> bool:
    """True under ``--debug`` or ``SOUNDMATES_DEBUG=1`` (also true/yes/on)."""
    if _debug_flag is not None:
        return _debug_flag
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_debug(on: bool | None) -> None:
    """Force debug on or off for this process (None: follow ``SOUNDMATES_DEBUG`` again)."""
    global _debug_flag
    _debug_flag = on
    if _handler is not None:
        _handler.setLevel(logging.DEBUG if is_debug() else logging.WARNING)


def one_line(text: object, limit: int = _MAX_LINE) -> str:
    """``text`` as one printable line: line breaks become spaces, control characters (ANSI escapes
    from a crafted id, say) are shown escaped, and very long text is shortened."""
    out = []
    for ch in " ".join(str(text).split("\n")):
        if ch in "\r\t":
            out.append(" ")
        elif unicodedata.category(ch).startswith("C"):
            out.append(ascii(ch)[1:-1])
        else:
            out.append(ch)
    line = "".join(out).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (the message alone is often empty, e.g. for MemoryError;
    the lines after the first are often a library's backtrace)."""
    first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
    errors = getattr(exc, "errors", None)
    if callable(errors) and hasattr(exc, "title"):  # pydantic: the first line names no field
        try:
            e = errors()[0]
            first += f": {'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}"
        except Exception:  # noqa: BLE001 - the first line is enough
            pass
    msg = one_line(first)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _collapse(record: logging.LogRecord) -> logging.LogRecord:
    """Turn a record's traceback into a one-line suffix (without debug)."""
    if record.exc_info and record.exc_info[1] is not None and not is_debug():
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot format must still be logged
            message = str(record.msg)
        record.msg = f"{message} ({describe(record.exc_info[1])})"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return record


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not is_debug():
            _collapse(record)
            return one_line(super().format(record), limit=2000)
        return super().format(record)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a test runner swaps it per command)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging.Handler contract: handleError reports it
            self.handleError(record)


def _install_record_factory() -> None:
    # A record factory, not a handler: it applies whoever handles the records (Airflow's task
    # log, Streamlit, pytest), and only to this package's loggers.
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if record.exc_info and (record.name == "soundmates" or record.name.startswith("soundmates.")):
            _collapse(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def configure_logging(*, debug: bool | None = None, handler: bool = True) -> None:
    """Configure logging once per process; calling again only updates the debug setting.

    ``debug``: True/False forces it, None follows ``SOUNDMATES_DEBUG``. ``handler=False`` (DAG
    tasks: Airflow owns the handlers) installs only the one-line policy.
    """
    global _handler
    set_debug(debug)
    _install_record_factory()
    if handler and _handler is None:
        h = _StderrHandler()
        h.setFormatter(_OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
        _handler = h
        logging.getLogger().addHandler(h)
    if _handler is not None:
        _handler.setLevel(logging.DEBUG if is_debug() else logging.WARNING)
        root = logging.getLogger()
        if is_debug() and root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
