"""Removals against a served version: which indexed users they hide, and the guard that serves nothing once removals were lost.

Every version directory gets ``removals_seen.json`` (how many removals existed) on each removal.
If both copies of the removed-users list disappear, that count is what tells "removals were lost"
from "nobody was ever removed".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from soundmates.index._files import atomic_write_bytes, stat_key
from soundmates.index.errors import RemovalsUnreadable
from soundmates.index.loader import Loaded
from soundmates.index.tombstones import TombState
from soundmates.index.versions import is_int

log = logging.getLogger("soundmates.index")

REMOVALS_SEEN_FILE = "removals_seen.json"


def blocked_in(loaded: Loaded, tombs: TombState) -> frozenset[str]:
    """Indexed users whose indexed vector comes from data read before their removal (or their comeback)."""
    state, ids = loaded.blocked
    if state is not tombs:
        ids = frozenset(u for u, t in tombs.users.items() if u in loaded.positions and t.blocks(loaded.read_at))
        loaded.blocked = (tombs, ids)
    return ids


def removals_seen(versions_dir: Path, loaded: Loaded) -> int:
    """How many removals existed when this version last saw one (0 if never, or if the note is unreadable)."""
    path, seen_key, seen = loaded.removals_seen
    if path is None:  # asked on every query: the path is built once per version
        path = versions_dir / loaded.version / REMOVALS_SEEN_FILE
        loaded.removals_seen = (path, seen_key, seen)
    key = stat_key(path)
    if key is None or key == seen_key:
        return seen if key is not None else 0
    try:
        n = json.loads(path.read_bytes()).get("count")
    except (OSError, ValueError, AttributeError):
        n = 0
    loaded.removals_seen = (path, key, n if is_int(n) else 0)
    return loaded.removals_seen[2]


def note_removals(versions_dir: Path, versions: list[str], count: int) -> None:
    """Tell every version directory that ``count`` removals exist now."""
    for version in versions:
        try:
            atomic_write_bytes(versions_dir / version / REMOVALS_SEEN_FILE, json.dumps({"count": count}).encode())
        except OSError as e:  # the removal itself is recorded; this is only the guard against losing it
            log.warning("could not note removals in index version %s: %s", version, e)


def check_removals_kept(versions_dir: Path, loaded: Loaded, tombs: TombState, tombstones_path: Path) -> None:
    """RemovalsUnreadable if ``loaded`` saw more removals than the removed-users list now holds."""
    built_with = max(removals_seen(versions_dir, loaded), loaded.manifest.get("tombstones_count") or 0)
    if is_int(built_with) and built_with > len(tombs.users):
        raise RemovalsUnreadable(
            f"the removed-users list holds {len(tombs.users)} removals but index version {loaded.version} "
            f"was built when it held {built_with}: removals were lost, so nothing is served; restore "
            f"{tombstones_path} from a backup copy"
        )
