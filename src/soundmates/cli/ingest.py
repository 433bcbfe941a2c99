"""``soundmates ingest``: Spotify profiles -> canonical profiles under SOUNDMATES_DATA_DIR."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import typer

from soundmates.cli._common import emit_json, fail
from soundmates.logs import one_line

# A reference is at most 512 characters (soundmates.spotify.refs); a line far longer is not one.
MAX_REF_LINE_BYTES = 4096
# A million-user world's users.txt is ~30 MB; a --file far larger is not a list of references.
MAX_REF_FILE_BYTES = 128 << 20
_CHUNK = 1 << 16


def read_ref_file(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The references in ``path``, one per line, and the lines that cannot be one as (shown, reason).

    Blank lines and ``#`` comment lines are ignored; a ``#`` only starts a comment at the beginning
    of a line (legacy user ids may hold ``#``). The file is read line by line, each line and the
    whole file bounded (``MAX_REF_LINE_BYTES``, ``MAX_REF_FILE_BYTES``): ``ValueError`` past the latter.
    """
    refs: list[str] = []
    bad: list[tuple[str, str]] = []
    total = 0
    with open(path, "rb") as fh:
        for number in itertools.count(1):
            raw = fh.readline(MAX_REF_LINE_BYTES + 1)
            if not raw:
                break
            total += len(raw)
            overlong = len(raw) > MAX_REF_LINE_BYTES
            piece = raw
            while overlong and piece and not piece.endswith(b"\n") and total <= MAX_REF_FILE_BYTES:
                piece = fh.readline(_CHUNK)  # skip the rest of the line, in bounded pieces
                total += len(piece)
            if total > MAX_REF_FILE_BYTES:
                raise ValueError(
                    f"--file {path} is larger than {MAX_REF_FILE_BYTES >> 20} MiB, far more than a list "
                    "of profile references; give a file with one reference per line"
                )
            if overlong:
                bad.append((f"line {number}", f"longer than {MAX_REF_LINE_BYTES} bytes: not a profile reference"))
                continue
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                bad.append((f"line {number}", "not UTF-8 text: not a profile reference"))
                continue
            if number == 1:
                text = text.removeprefix("\ufeff").strip()
            if text and not text.startswith("#"):
                refs.append(text)
    return refs, bad


def ingest(
    refs: list[str] | None = typer.Argument(
        None, help="Profile references: https://open.spotify.com/user/ID, spotify:user:ID or a bare ID."
    ),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help="A file with one reference per line (blank lines and # comments ignored), e.g. a world's users.txt.",
    ),
    refresh: bool = typer.Option(
        False, "--refresh", help="Fetch users again even if their profile is stored (raw pages are refetched too)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary) on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Fetch Spotify users' public playlists, tracks and artists into canonical profiles.

    Works against the real Web API or the local server by configuration only
    (SOUNDMATES_SPOTIFY_API_URL, SOUNDMATES_SPOTIFY_TOKEN_URL; credentials from
    SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET). Users that fail are listed with their
    reason, users a rate limit kept from being done are listed as deferred (with the seconds
    to wait), and the exit code stays 0; it is non-zero only when nothing could run.
    """
    all_refs, bad_lines = _gather_refs(refs, file)

    from soundmates.config import get_settings
    from soundmates.pipelines.ingest import ingest_users
    from soundmates.spotify.errors import AuthenticationFailed, MissingCredentials
    from soundmates.spotify.ingest import FailedRef, IngestSummary

    try:
        summary = (
            ingest_users(all_refs, settings=get_settings(), refresh=refresh, progress=progress) if all_refs else IngestSummary()
        )
    except (MissingCredentials, AuthenticationFailed) as exc:
        fail(exc.reason)
        return
    summary.failed += [FailedRef(ref=f"{file}: {where}", reason=f"invalid reference: {why}") for where, why in bad_lines]

    data = summary.model_dump(mode="json")
    if as_json:
        emit_json(data)
        return
    _print_summary(summary)


def _gather_refs(refs: list[str] | None, file: Path | None) -> tuple[list[str], list[tuple[str, str]]]:
    """The references given (arguments, then --file's lines) and --file's lines that cannot be one; exit 2 if none."""
    all_refs = list(refs or [])
    bad_lines: list[tuple[str, str]] = []
    if file is not None:
        try:
            from_file, bad_lines = read_ref_file(file)
        except OSError as exc:
            fail(f"cannot read --file {file}: {exc.strerror or exc}")
        except ValueError as exc:
            fail(str(exc))
        all_refs += from_file
    if not all_refs and not bad_lines:
        fail("nothing to ingest: give profile references or --file F (one reference per line)")
    return all_refs, bad_lines


def _print_summary(summary: Any) -> None:
    """The text output: the counts, each failed reference with its reason, and when to resume the deferred ones."""
    typer.echo(
        f"ingested {summary.ingested}, skipped {summary.skipped} (already stored), failed {len(summary.failed)}, "
        f"deferred {len(summary.deferred)} (rate-limited); {summary.api_calls} API calls in {summary.elapsed_s:.1f} s"
    )
    for f in summary.failed:  # a reference is what someone typed: never echo its control characters raw
        typer.echo(f"  failed {one_line(f.ref, 200)}: {one_line(f.reason, 600)}")
    if summary.deferred:
        wait = max(d.retry_after_s for d in summary.deferred)
        typer.echo(
            f"  deferred {len(summary.deferred)} user(s): Spotify asked to wait; run the same command again "
            f"in {wait:.0f} s to resume them (pages already fetched are kept)"
        )


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("ingest")(ingest)
