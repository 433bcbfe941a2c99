"""A blend as a file: JSON (the --json contract), CSV (one row per track) and M3U (an extended playlist of Spotify links)."""

from __future__ import annotations

import csv
import io
import json

from soundmates.recommend.blend_models import Blend

FORMATS = ("json", "csv", "m3u")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "m3u": "audio/x-mpegurl"}
CSV_COLUMNS = ("position", "id", "name", "artists", "reason", "from", "spotify_url")


def track_url(track_id: str) -> str:
    return f"https://open.spotify.com/track/{track_id}"


def to_json(blend: Blend) -> str:
    return json.dumps(blend.contract(), ensure_ascii=False, indent=2) + "\n"


def to_csv(blend: Blend) -> str:
    """One row per track; several artists or members are joined with '; '."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for pos, t in enumerate(blend.tracks, start=1):
        w.writerow([pos, t.id, t.name, "; ".join(t.artists), t.reason, "; ".join(t.from_), track_url(t.id)])
    return out.getvalue()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def to_m3u(blend: Blend, title: str | None = None) -> str:
    """Extended M3U: ``#EXTINF:<seconds>,<artists> - <name>`` then the track's Spotify link (-1 s when unknown)."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_one_line(title or playlist_name(blend))}"]
    for t in blend.tracks:
        seconds = round(t.duration_ms / 1000) if t.duration_ms else -1
        who = ", ".join(t.artists)
        prefix = f"{_one_line(who)} - " if who else ""
        lines.append(f"#EXTINF:{seconds},{prefix}{_one_line(t.name)}")
        lines.append(track_url(t.id))
    return "\n".join(lines) + "\n"


def render(blend: Blend, fmt: str) -> str:
    """The blend in ``fmt`` (one of FORMATS); ValueError for another format."""
    if fmt == "json":
        return to_json(blend)
    if fmt == "csv":
        return to_csv(blend)
    if fmt == "m3u":
        return to_m3u(blend)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def playlist_name(blend: Blend) -> str:
    names = [blend.names.get(m, m) for m in blend.members]
    head = " + ".join(names[:3]) + (f" + {len(names) - 3} more" if len(names) > 3 else "")
    return f"Soundmates blend: {head}"


def description(blend: Blend) -> str:
    return f"{len(blend.tracks)} tracks mixed by Soundmates from {len(blend.members)} people's libraries."
