"""Published index versions on disk: the validated ``CURRENT`` pointer, validated manifests, ordered publish, pruning.

``CURRENT`` must hold one version name (``YYYYmmddTHHMMSSffffffZ-xxxxxx``) of an existing version
directory; anything else (binary, a directory, empty, ``..``, a missing version) is reported and
the newest valid version is served instead. Versions are ordered by their *sequence*: when the
features they index were read (``features_read_at``), then the name. A build publishes only if its
sequence is newer than the one ``CURRENT`` names, checked under the build lock, so a slower
concurrent build never moves ``CURRENT`` back to older data.

With an object store (``remote``), ``versions/`` and ``CURRENT`` live there and ``cache`` holds this
host's copies of versions (downloaded whole, then renamed in: one folder per version name, never
stale, since a version never changes). A build uploads its version with the manifest last, then
swaps ``CURRENT`` with a conditional PUT (``If-Match`` the pointer it compared against, or
``If-None-Match`` when there was none), so two hosts' builds cannot move it back either.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from soundmates.index._files import atomic_write_bytes, sha256_file, stat_key
from soundmates.index.errors import IndexCorrupt
from soundmates.objstore import ObjectStore

MANIFEST_FILE = "manifest.json"
VERSION_RE = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{6}")
STALE_TMP_S = 3600.0
_SHA_RE = re.compile(r"[0-9a-f]{64}")
# Fields every manifest carries, with their checks (the backend checks its own parameters).
_INT_FIELDS = ("count", "dim")


def new_version_name() -> str:
    # Sortable by build time; the random suffix keeps two builds in the same microsecond apart.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def is_int(value, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _time(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def validate_manifest(m, name: str, files_for: Callable[[dict], tuple[str, ...] | None]) -> dict:
    """``m`` if it has the shape a reader relies on, else IndexCorrupt naming the first problem.

    ``files_for(m)`` = the files a version of ``m``'s backend must hold (None: unknown backend).
    """

    def bad(why: str) -> IndexCorrupt:
        return IndexCorrupt(f"index version {name}: manifest {why}")

    if not isinstance(m, dict):
        raise bad("is not a JSON object")
    files = files_for(m)
    if files is None:
        raise bad(f"names an unknown backend {str(m.get('backend'))[:20]!r}")
    if m.get("version") != name:
        raise bad(f"names version {str(m.get('version'))[:40]!r}")
    for key in _INT_FIELDS:
        if not is_int(m.get(key), 1):
            raise bad(f"has no valid {key!r}")
    try:
        datetime.fromisoformat(str(m.get("built_at")))
    except ValueError:
        raise bad("has no valid 'built_at'") from None
    if m.get("features_read_at") is not None and _time(m["features_read_at"]) is None:
        raise bad("has an invalid 'features_read_at'")
    listed = m.get("files")
    if not isinstance(listed, dict) or set(listed) != set(files):
        raise bad(f"does not list exactly the files {', '.join(files)}")
    for fname, info in listed.items():
        if not isinstance(info, dict) or not is_int(info.get("bytes")) or not _SHA_RE.fullmatch(str(info.get("sha256"))):
            raise bad(f"entry for {fname} has no valid size and sha256")
    for key in ("calibration", "meta"):
        if key in m and not isinstance(m[key], dict):
            raise bad(f"field {key!r} is not an object")
    return m


def sequence(m: dict) -> tuple[float, str]:
    """Order of versions by the age of the data they index; a version without a read time sorts by build time."""
    t = _time(m.get("features_read_at"))
    if t is None:
        t = datetime.fromisoformat(str(m["built_at"])).timestamp()
    return (t, str(m["version"]))


class VersionStore:
    """``versions/<name>/`` directories and the ``CURRENT`` pointer of one index directory."""

    def __init__(
        self,
        root: Path,
        files_for: Callable[[dict], tuple[str, ...] | None],
        *,
        remote: ObjectStore | None = None,
        cache: Path | None = None,
        poll_s: float = 1.0,
    ):
        """``remote``: versions and ``CURRENT`` on an object store, copies under ``cache`` (default ``root``);
        a reader re-reads the remote ``CURRENT`` at most every ``poll_s`` seconds."""
        self.root = Path(root)
        self.remote = remote
        self.versions_dir = (Path(cache) if remote is not None and cache is not None else self.root) / "versions"
        self.current_path = self.root / "CURRENT"
        self.files_for = files_for
        self.lock = FileLock(str(self.root / ".build.lock"))
        self.poll_s = poll_s
        self._pointer: tuple[float, tuple[bytes, str] | None] | None = None  # (read at, (bytes, ETag) or None)

    # --- the object store ----------------------------------------------------
    def _remote_pointer(self, remote: ObjectStore, fresh: bool = False) -> tuple[bytes, str] | None:
        now = time.monotonic()
        if fresh or self._pointer is None or now - self._pointer[0] >= self.poll_s:
            self._pointer = (now, remote.get_versioned("CURRENT"))
        return self._pointer[1]

    def change_key(self) -> tuple:
        """Changes whenever ``CURRENT`` (or, on disk, the versions directory) may have: readers re-choose then."""
        if self.remote is not None:
            got = self._remote_pointer(self.remote)
            return ("remote", None if got is None else got[1])
        return (stat_key(self.current_path), stat_key(self.versions_dir))

    def fetch(self, name: str) -> None:
        """With an object store: make sure this host has its copy of version ``name`` (downloaded once)."""
        if self.remote is not None and not (self.versions_dir / name / MANIFEST_FILE).is_file():
            self.remote.download_dir(f"versions/{name}", self.versions_dir / name)

    def _exists(self, name: str) -> bool:
        if (self.versions_dir / name).is_dir():
            return True
        return self.remote is not None and self.remote.get(f"versions/{name}/{MANIFEST_FILE}") is not None

    # --- reading -------------------------------------------------------------
    def names(self) -> list[str]:
        """Version directories with a valid name, newest name first."""
        if self.remote is not None:  # a version is there once its manifest (uploaded last) is
            parts = [k.split("/") for k in self.remote.keys("versions")]
            return sorted(
                (p[1] for p in parts if len(p) == 3 and p[2] == MANIFEST_FILE and VERSION_RE.fullmatch(p[1])), reverse=True
            )
        try:
            entries = list(self.versions_dir.iterdir())
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise IndexCorrupt(
                f"{self.versions_dir} is not a directory: move it aside, then run 'soundmates index build'"
            ) from None
        except OSError as e:
            raise IndexCorrupt(f"{self.versions_dir} cannot be listed ({e.strerror}): run 'soundmates index build'") from None
        return sorted((p.name for p in entries if VERSION_RE.fullmatch(p.name) and p.is_dir()), reverse=True)

    def read_current(self) -> tuple[str | None, str | None]:
        """(name, None) if ``CURRENT`` names an existing version; (None, None) if absent; (None, why) if damaged."""
        try:
            if self.remote is not None:
                got = self._remote_pointer(self.remote)
                if got is None:
                    return None, None
                raw = got[0][:257]
            else:
                with open(self.current_path, "rb") as f:
                    raw = f.read(257)
        except FileNotFoundError:
            return None, None
        except IsADirectoryError:
            return None, "CURRENT is a directory, not a version name"
        except OSError as e:
            return None, f"CURRENT cannot be read ({e.strerror or e})"
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return None, "CURRENT holds binary data, not a version name"
        if not text:
            return None, "CURRENT is empty"
        if len(raw) > 256 or not VERSION_RE.fullmatch(text):
            return None, f"CURRENT holds {text[:40]!r}, which is not a version name"
        if not self._exists(text):
            return None, f"CURRENT names version {text}, which does not exist"
        return text, None

    def read_manifest(self, name: str) -> dict:
        path = self.versions_dir / name / MANIFEST_FILE
        try:
            if self.remote is not None and not path.is_file():
                raw = self.remote.get(f"versions/{name}/{MANIFEST_FILE}")
                if raw is None:
                    raise FileNotFoundError(name)
            else:
                raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise IndexCorrupt(f"index version {name}: manifest missing") from None
        except OSError as e:
            raise IndexCorrupt(f"index version {name}: manifest cannot be read ({e.strerror or e})") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise IndexCorrupt(f"index version {name}: manifest unreadable ({str(e)[:80]})") from None
        return validate_manifest(data, name, self.files_for)

    def verify(self, name: str) -> dict:
        """The manifest of ``name`` if every file it lists matches its size and checksum, else IndexCorrupt."""
        self.fetch(name)
        manifest = self.read_manifest(name)
        vdir = self.versions_dir / name
        for fname, info in manifest["files"].items():
            path = vdir / fname
            try:
                size = path.stat().st_size
                ok = size == info["bytes"] and path.is_file() and sha256_file(path) == info["sha256"]
            except FileNotFoundError:
                raise IndexCorrupt(f"index version {name}: {fname} missing") from None
            except OSError as e:
                raise IndexCorrupt(f"index version {name}: {fname} cannot be read ({e.strerror or e})") from None
            if not ok:
                raise IndexCorrupt(f"index version {name}: {fname} does not match its size and checksum (truncated or corrupt)")
        return manifest

    def sequences(self) -> tuple[dict[str, tuple], dict[str, str]]:
        """{name: sequence} of versions whose manifest reads, and {name: why} of those whose manifest does not."""
        seqs, bad = {}, {}
        for name in self.names():
            try:
                seqs[name] = sequence(self.read_manifest(name))
            except IndexCorrupt as e:
                bad[name] = str(e)
        return seqs, bad

    def candidates(self) -> tuple[str | None, list[str], list[str], dict[str, str]]:
        """(target, versions to try newest first, warnings, {name: why unreadable}); target None = CURRENT unusable."""
        target, problem = self.read_current()
        seqs, bad = self.sequences()
        newest_first = sorted(seqs, key=seqs.__getitem__, reverse=True)
        if target is not None and target in seqs:
            return target, [target] + [n for n in newest_first if seqs[n] < seqs[target]], [], bad
        if target is not None:  # its manifest is damaged: try it (to report why), then everything else
            return target, [target] + newest_first, [], bad
        warnings = []
        if newest_first or bad:
            why = problem or "CURRENT is missing"
            warnings.append(f"{why}: serving the newest valid version instead")
        return None, newest_first, warnings, bad

    # --- writing -------------------------------------------------------------
    def _reference(self) -> tuple | None:
        """Sequence a new version must beat: the one CURRENT names, or (pointer damaged) the newest readable one."""
        target, _ = self.read_current()
        if target is not None:
            try:
                return sequence(self.read_manifest(target))
            except IndexCorrupt:
                pass
        seqs, _ = self.sequences()
        return max(seqs.values()) if seqs else None

    def publish(self, name: str, seq: tuple) -> bool:
        """Point CURRENT at ``name`` unless it already names newer data; call with ``self.lock`` held."""
        if self.remote is not None:
            return self._publish_remote(self.remote, name, seq)
        ref = self._reference()
        if ref is not None and ref[1] != name and seq <= ref:
            return False
        if self.current_path.is_dir() and not self.current_path.is_symlink():
            aside = self.root / f"CURRENT.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            os.replace(self.current_path, aside)  # never delete what we did not write
        atomic_write_bytes(self.current_path, (name + "\n").encode("ascii"))
        return True

    def _publish_remote(self, remote: ObjectStore, name: str, seq: tuple) -> bool:
        """Upload ``name`` (manifest last), then compare-and-swap ``CURRENT`` to it unless it names newer data."""
        remote.upload_dir(self.versions_dir / name, f"versions/{name}", last=MANIFEST_FILE)
        for _ in range(50):
            got = self._remote_pointer(remote, fresh=True)
            ref = self._reference()
            if ref is not None and ref[1] != name and seq <= ref:
                return False
            if remote.put(
                "CURRENT", (name + "\n").encode("ascii"), if_absent=got is None, if_etag=None if got is None else got[1]
            ):
                self._pointer = None
                return True
        raise IndexCorrupt(f"CURRENT at {remote.url()} kept changing: gave up publishing {name}")

    def prune(self, keep: int, current: str | None) -> list[str]:
        """Delete all but the ``keep`` newest versions (never the one served) and stale temporary dirs."""
        seqs, bad = self.sequences()
        ordered = sorted(seqs, key=seqs.__getitem__, reverse=True) + sorted(bad, reverse=True)
        removed = []
        for name in ordered[max(keep, 2) :]:
            if name != current:
                if self.remote is not None:
                    self.remote.delete(f"versions/{name}")
                shutil.rmtree(self.versions_dir / name, ignore_errors=True)
                removed.append(name)
        now = time.time()
        for tmp in self.versions_dir.glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_S:  # a crashed build's leftovers
                    shutil.rmtree(tmp, ignore_errors=True)
            except FileNotFoundError:
                pass
        return removed
