"""Read the JSON files of a Spotify data export (a ZIP or a folder) safely.

Spotify's packages nest files under folder names that changed over the years
("MyData/", "Spotify Account Data/", "Spotify Extended Streaming History/"), so
files are found by basename. A ZIP is never extracted to disk: members are read
into memory one at a time, after checks that stop ZIP bombs, oversized files
and paths escaping the archive.
"""

from __future__ import annotations

import json
import lzma
import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

# Limits, documented in the README. A real "Account data" package is a few MB;
# extended history files are ~12 MB each and a long-time listener has ~20 of them.
MAX_ARCHIVE_BYTES = 1 << 30  # 1 GiB on disk
MAX_MEMBER_BYTES = 256 << 20  # 256 MiB uncompressed, per JSON file
MAX_TOTAL_BYTES = 2 << 30  # 2 GiB uncompressed, all JSON files together
MAX_MEMBERS = 10_000
MAX_COMPRESSION_RATIO = 200  # JSON compresses ~10-20x; far more is a bomb


class ExportError(ValueError):
    """The export cannot be read; the message says what was wrong. Nothing is stored."""


# What reading one member of a (possibly damaged or hostile) ZIP can raise besides ExportError:
# bad CRC / truncated (BadZipFile, EOFError), a damaged deflate, bzip2 or lzma stream (zlib.error,
# OSError, lzma.LZMAError), the encrypted flag (RuntimeError), an unsupported compression method
# (NotImplementedError), undecodable member names (UnicodeDecodeError, a ValueError).
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    OSError,
    ValueError,
)


def _refuse_constant(name: str) -> float:
    raise ExportError(f"the JSON holds {name}, which is not a number Spotify writes")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ExportError(f"the JSON holds the number {text[:20]}, too large to be real")
    return value


def loads_export_json(data: bytes, name: str) -> object:
    """Parse one export file; every way it can fail is an :class:`ExportError` naming the file."""
    try:
        return json.loads(data.decode("utf-8-sig"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except ExportError as exc:
        raise ExportError(f"{name}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ExportError(f"{name} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ExportError(f"{name} is not valid JSON (truncated or damaged?): {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise ExportError(f"{name} is nested far deeper than any Spotify export file") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ExportError(f"{name} holds a value that cannot be read: {exc}") from None


@dataclass(frozen=True)
class ExportFile:
    basename: str
    location: str  # path inside the archive or folder, for messages
    size: int

    def __str__(self) -> str:
        return self.location


def _check_member_name(name: str) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and p.parts[0].endswith(":")):
        raise ExportError(f"refusing the archive: member {name!r} has a path escaping the archive")


class ExportSource:
    """A ZIP file or a folder holding a Spotify export; iterate its JSON files by basename."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._files: dict[str, tuple[str, int]] = {}
        try:
            if not self.path.exists():
                raise ExportError(f"{self.path}: no such file or folder")
            if self.path.is_dir():
                self._scan_dir()
            else:
                self._scan_zip()
        except ExportError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            where = exc.filename if exc.filename is not None else self.path
            raise ExportError(f"cannot read {where}: {exc.strerror or exc}") from None

    # --- scanning -------------------------------------------------------------
    def _scan_dir(self) -> None:
        total = 0
        for f in sorted(self.path.rglob("*.json")):
            if not f.is_file() or f.is_symlink():
                continue
            size = f.stat().st_size
            if size > MAX_MEMBER_BYTES:
                raise ExportError(
                    f"{f.name} is {size / 2**20:.0f} MiB, far larger than any real export file (limit {MAX_MEMBER_BYTES >> 20} MiB)"
                )
            total += size
            if total > MAX_TOTAL_BYTES:
                raise ExportError(
                    f"the folder holds more than {MAX_TOTAL_BYTES >> 30} GiB of JSON, far more than any real export"
                )
            self._files.setdefault(f.name, (str(f), size))

    def _scan_zip(self) -> None:
        size = self.path.stat().st_size
        if size > MAX_ARCHIVE_BYTES:
            raise ExportError(
                f"{self.path.name} is {size / 2**20:.0f} MiB, larger than any real Spotify export (limit {MAX_ARCHIVE_BYTES >> 20} MiB)"
            )
        if not zipfile.is_zipfile(self.path):
            raise ExportError(f"{self.path.name} is not a ZIP archive (expected the ZIP Spotify sends, or its unpacked folder)")
        try:
            zf = zipfile.ZipFile(self.path)
            infos = zf.infolist()
        except ARCHIVE_ERRORS as exc:
            raise ExportError(f"{self.path.name} is a damaged ZIP archive: {exc}") from None
        self._zip = zf
        if len(infos) > MAX_MEMBERS:
            raise ExportError(
                f"{self.path.name} has {len(infos)} entries; a Spotify export has a few dozen (limit {MAX_MEMBERS})"
            )
        total = 0
        for info in infos:
            _check_member_name(info.filename)
            if info.is_dir() or not info.filename.lower().endswith(".json"):
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                raise ExportError(
                    f"{info.filename} unpacks to {info.file_size / 2**20:.0f} MiB, far larger than any real export file (limit {MAX_MEMBER_BYTES >> 20} MiB)"
                )
            if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
                raise ExportError(
                    f"{info.filename} expands {info.file_size // max(info.compress_size, 1)}x: refusing a likely ZIP bomb"
                )
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise ExportError(
                    f"the archive unpacks to more than {MAX_TOTAL_BYTES >> 30} GiB of JSON: refusing a likely ZIP bomb"
                )
            base = PurePosixPath(info.filename).name
            self._files.setdefault(base, (info.filename, info.file_size))

    # --- access ---------------------------------------------------------------
    def files(self) -> list[ExportFile]:
        return [ExportFile(b, loc, size) for b, (loc, size) in sorted(self._files.items())]

    def read_json(self, f: ExportFile) -> Any:
        if self._zip is not None:
            try:
                # Read at most the declared size + 1 byte: a member whose header lies about its size is caught.
                with self._zip.open(f.location) as fh:
                    data = fh.read(MAX_MEMBER_BYTES + 1)
            except RuntimeError as exc:  # the encrypted flag: zipfile wants a password
                raise ExportError(f"{f.location} is encrypted; Spotify's exports are not: unpack it yourself ({exc})") from None
            except NotImplementedError as exc:
                raise ExportError(
                    f"{f.location} uses a compression method that cannot be read ({exc}); "
                    "re-pack the folder as a plain ZIP or give the unpacked folder"
                ) from None
            except ARCHIVE_ERRORS as exc:
                raise ExportError(
                    f"{f.location} is damaged in the archive ({type(exc).__name__}: {exc}); download the export again"
                ) from None
            if len(data) > MAX_MEMBER_BYTES:
                raise ExportError(f"{f.location} unpacks to more than {MAX_MEMBER_BYTES >> 20} MiB: refusing a likely ZIP bomb")
        else:
            try:
                data = Path(f.location).read_bytes()
            except OSError as exc:
                raise ExportError(f"cannot read {f.location}: {exc.strerror or exc}") from None
            if len(data) > MAX_MEMBER_BYTES:
                raise ExportError(f"{f.location} grew past {MAX_MEMBER_BYTES >> 20} MiB while being read")
        return loads_export_json(data, f.basename)

    def __iter__(self) -> Iterator[ExportFile]:
        return iter(self.files())

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> ExportSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
