"""Pages of playlist rows filtered by ``fields``: small row objects around cached, already projected tracks.

An ingest asks only for the fields it reads (ids, names, dates), which makes an items page ~6.7x
smaller; each track is filtered once per (track, filter) and then reused as JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from soundmates.world.discography import TrackSpec, album_n, catalog_track
from soundmates.world.fields import FieldSpec, project
from soundmates.world.playlists import ROW_EPISODE, ROW_LOCAL, ROW_NULL, PlaylistSpec
from soundmates.world.render import RawJSON, dumps, iso, page

if TYPE_CHECKING:
    from soundmates.world.render import Renderer

_VIDEO_THUMBNAIL = {"url": None}
# Filtered tracks kept per filter (~0.3 KB each, so ~300 MB at most). A 10,000-user world's rows hold
# 544,000 distinct tracks among 2.4 million: at the old bound of 200,000 the cache was emptied twice
# during an ingest and most first sights after that were rendered again.
PROJECTED_TRACKS_MAX = 1_000_000


def projected_tracks(r: Renderer, spec: FieldSpec) -> dict[int, msgspec.Raw]:
    """Track n -> its JSON filtered by ``spec``, cached on the renderer (rows of many users share tracks).

    Looked up once per page: a spec hashes by value, which costs more than the per-row lookup."""
    cache = r.projected_tracks.get(spec)
    if cache is None:
        if len(r.projected_tracks) >= 64:
            r.projected_tracks.clear()  # a client that varies its filter: start over
        cache = r.projected_tracks[spec] = {}
    elif len(cache) >= PROJECTED_TRACKS_MAX:
        cache.clear()  # a crude bound: a page needs at most 100 entries again
    return cache


def _track(r: Renderer, cache: dict[int, msgspec.Raw], n: int, spec: FieldSpec) -> msgspec.Raw:
    raw = cache.get(n)
    if raw is None:
        raw = cache[n] = msgspec.Raw(dumps(filtered_track(r, catalog_track(n), spec)).encode())
    return raw


def filtered_track(r: Renderer, track: TrackSpec, spec: FieldSpec) -> dict:
    """``project(r.track(track), spec)``, computing only the fields asked for (most of a track is never read)."""
    if spec.exclude:
        return project(r.track(track), spec)
    out = {}
    for name, sub in spec.entries:
        if name == "album" and sub is not None:
            out[name] = filtered_album(r, album_n(track.artist, track.album), sub)
            continue
        present, value = r.track_field(track, name)
        if present:
            out[name] = value if sub is None else project(value, sub)
    return out


def filtered_album(r: Renderer, an: int, spec: FieldSpec) -> dict:
    """``project(r.album(an), spec)``, computing only the fields asked for (an ingest reads two of thirteen)."""
    if spec.exclude:
        return project(r.album(an), spec)
    values = r.album_fields(an, [name for name, _ in spec.entries])
    return {name: values[name] if sub is None else project(values[name], sub) for name, sub in spec.entries if name in values}


def _content(r: Renderer, pl: PlaylistSpec, kind: int, value: int, spec: FieldSpec | None, cache: dict) -> Any:
    """The ``item`` (and ``track``) of one row, filtered by ``spec`` (``cache``: :func:`projected_tracks` of it)."""
    if kind == ROW_NULL:
        return None
    if kind == ROW_EPISODE:
        return project(r.episode(value), spec)
    if kind == ROW_LOCAL:
        return project(r.local_track(pl, value), spec)
    if spec is None:
        return msgspec.Raw(r.track_json(value).encode("utf-8"))
    return _track(r, cache, value, spec)


def rows(r: Renderer, pl: PlaylistSpec, start: int, stop: int, spec: FieldSpec) -> list[dict]:
    """Rows ``start:stop`` of a playlist, each filtered by ``spec`` (the filter of ``items``)."""
    keep = {k: spec.selects(k) for k in ("added_at", "added_by", "is_local", "primary_color", "item", "video_thumbnail", "track")}
    if not r.full:
        keep["track"] = (False, None)
    caches = {k: projected_tracks(r, sub) if (sub := keep[k][1]) is not None else {} for k in ("item", "track")}
    same = keep["track"][1] == keep["item"][1]  # the ingest's filter: item and track alike (once per page)
    owner = project(r.user_ref(pl.owner), keep["added_by"][1]) if keep["added_by"][0] else None
    out = []
    for kind, value, ts in zip(pl.kinds[start:stop].tolist(), pl.values[start:stop].tolist(), pl.added_at[start:stop].tolist()):
        row: dict[str, Any] = {}
        if keep["added_at"][0]:
            row["added_at"] = iso(ts)
        if owner is not None:
            row["added_by"] = owner
        if keep["is_local"][0]:
            row["is_local"] = kind == ROW_LOCAL
        if keep["primary_color"][0]:
            row["primary_color"] = None
        if keep["item"][0]:
            row["item"] = _content(r, pl, kind, value, keep["item"][1], caches["item"])
        if keep["video_thumbnail"][0]:
            row["video_thumbnail"] = _VIDEO_THUMBNAIL
        if keep["track"][0]:
            row["track"] = (
                row["item"] if same and "item" in row else _content(r, pl, kind, value, keep["track"][1], caches["track"])
            )
        out.append(row)
    return out


def rows_page_json(r: Renderer, path: str, pl: PlaylistSpec, offset: int, limit: int, spec: FieldSpec) -> RawJSON:
    """A page of playlist rows filtered by ``spec`` (the whole ``fields`` filter of the call)."""
    shell = page(r.api, path, pl.total, offset, limit, lambda a, b: [])
    selected, items_spec = spec.selects("items")
    stop = min(pl.total, offset + limit)
    if selected and offset < stop:
        if items_spec is None:
            shell["items"] = msgspec.Raw(f"[{r.rows_json(pl, offset, stop)}]".encode())
        else:
            shell["items"] = rows(r, pl, offset, stop, items_spec)
    # The rows are already filtered; the shell's own keys are filtered here. ``items`` goes last,
    # as in the unfiltered page (render.page_json).
    out = {k: project(v, spec.selects(k)[1]) for k, v in shell.items() if k != "items" and spec.selects(k)[0]}
    if "items" in shell and selected:
        out["items"] = shell["items"]
    return RawJSON(dumps(out))  # msgspec writes the Raw rows as they are
