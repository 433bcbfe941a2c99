"""Parse the files of a Spotify data export into plain listening records.

Files are recognised by basename (see ``classify``). Only the fields a taste
profile needs are copied out; personal fields (``ip_addr``, ``conn_country``,
email, birthdate, ...) are never copied, and of ``Userdata.json`` only the
username is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .archive import ExportError, ExportFile, ExportSource

MIN_PLAY_MS = 30_000  # Spotify counts a stream from 30 s; shorter plays say little about taste
# One stream longer than a day is not a real play (a damaged or crafted row): refused and counted.
MAX_PLAY_MS = 24 * 3600 * 1000

_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("playlists", re.compile(r"^Playlist\d+\.json$", re.I)),
    ("library", re.compile(r"^YourLibrary\.json$", re.I)),
    ("account_history", re.compile(r"^StreamingHistory(_music_)?\d+\.json$", re.I)),
    ("extended_history", re.compile(r"^(Streaming_History_Audio_.*|endsong_\d+)\.json$", re.I)),
    ("userdata", re.compile(r"^Userdata\.json$", re.I)),
]


def classify(basename: str) -> str | None:
    for kind, rx in _KINDS:
        if rx.match(basename):
            return kind
    return None


def uri_id(uri: Any, kind: str) -> str | None:
    """``spotify:track:ID`` -> ID (None for another kind, a missing or malformed URI)."""
    if not isinstance(uri, str):
        return None
    parts = uri.split(":")
    if len(parts) == 3 and parts[0] == "spotify" and parts[1] == kind and parts[2]:
        return parts[2]
    return None


@dataclass
class TrackRef:
    name: str
    artist: str
    album: str | None = None
    track_id: str | None = None


@dataclass
class ExportPlaylist:
    name: str
    tracks: list[TrackRef] = field(default_factory=list)


@dataclass
class Play:
    track: TrackRef
    ms_played: int


@dataclass
class ParsedExport:
    username: str | None = None
    playlists: list[ExportPlaylist] = field(default_factory=list)
    saved_tracks: list[TrackRef] = field(default_factory=list)
    followed_artists: dict[str, str] = field(default_factory=dict)  # name -> Spotify artist id
    plays: list[Play] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)  # kind -> basenames read
    skipped: dict[str, int] = field(default_factory=dict)  # why -> count

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n


def _text(v: Any) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def _rows(value: Any, out: ParsedExport, what: str) -> list:
    """A list field, or [] (counted under ``what``) when a file gives a number, text or an object instead."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    out.skip(what)
    return []


def _play_ms(value: Any) -> int | None:
    """Milliseconds played, or None when not an integer (bools are not durations)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _kept_play(out: ParsedExport, track: TrackRef | None, ms: int | None, missing: str) -> Play | None:
    """The play of ``track`` for ``ms``, or None when skipped; skipped plays are counted under their reason."""
    if track is None or ms is None:
        out.skip(missing)
        return None
    if ms < MIN_PLAY_MS:
        out.skip("play under 30 s")
        return None
    if ms > MAX_PLAY_MS:
        out.skip("play longer than a day (impossible duration)")
        return None
    return Play(track, ms)


def _expect(data: Any, typ: type, f: ExportFile, what: str) -> Any:
    if not isinstance(data, typ):
        raise ExportError(f"{f.basename}: expected {what}, found {type(data).__name__}")
    return data


def _parse_playlists(data: Any, f: ExportFile, out: ParsedExport) -> None:
    pls = _expect(_expect(data, dict, f, "an object with 'playlists'").get("playlists"), list, f, "a 'playlists' list")
    for pl in pls:
        if not isinstance(pl, dict):
            out.skip("malformed playlist")
            continue
        playlist = ExportPlaylist(name=_text(pl.get("name")) or "Untitled playlist")
        for item in _rows(pl.get("items"), out, "playlist items that are not a list"):
            if not isinstance(item, dict):
                out.skip("null row")
                continue
            tr = item.get("track")
            if not isinstance(tr, dict):
                if item.get("episode"):
                    out.skip("episode")
                elif item.get("audiobook"):
                    out.skip("audiobook")
                elif item.get("localTrack"):
                    out.skip("local file")
                else:
                    out.skip("null row")
                continue
            name, artist = _text(tr.get("trackName")), _text(tr.get("artistName"))
            if not name or not artist:
                out.skip("track without name or artist")
                continue
            playlist.tracks.append(TrackRef(name, artist, _text(tr.get("albumName")), uri_id(tr.get("trackUri"), "track")))
        out.playlists.append(playlist)


def _parse_library(data: Any, f: ExportFile, out: ParsedExport) -> None:
    lib = _expect(data, dict, f, "an object")
    for t in _rows(lib.get("tracks"), out, "library tracks that are not a list"):
        if not isinstance(t, dict):
            out.skip("null row")
            continue
        name, artist = _text(t.get("track")), _text(t.get("artist"))
        if not name or not artist:
            out.skip("track without name or artist")
            continue
        out.saved_tracks.append(TrackRef(name, artist, _text(t.get("album")), uri_id(t.get("uri"), "track")))
    for a in _rows(lib.get("artists"), out, "library artists that are not a list"):
        if isinstance(a, dict) and _text(a.get("name")):
            aid = uri_id(a.get("uri"), "artist")
            if aid:
                out.followed_artists[_text(a.get("name"))] = aid  # type: ignore[index]


def _parse_account_history(data: Any, f: ExportFile, out: ParsedExport) -> None:
    for row in _expect(data, list, f, "a list of plays"):
        if not isinstance(row, dict):
            out.skip("null row")
            continue
        name, artist = _text(row.get("trackName")), _text(row.get("artistName"))
        track = TrackRef(name, artist) if name and artist else None
        play = _kept_play(out, track, _play_ms(row.get("msPlayed")), "play without track, artist or duration")
        if play is not None:
            out.plays.append(play)


def _parse_extended_history(data: Any, f: ExportFile, out: ParsedExport) -> None:
    for row in _expect(data, list, f, "a list of plays"):
        if not isinstance(row, dict):
            out.skip("null row")
            continue
        if row.get("spotify_episode_uri") or row.get("episode_name"):
            out.skip("episode")
            continue
        if row.get("audiobook_uri") or row.get("audiobook_title"):
            out.skip("audiobook")
            continue
        name = _text(row.get("master_metadata_track_name"))
        artist = _text(row.get("master_metadata_album_artist_name"))
        track = None
        if name and artist:
            album = _text(row.get("master_metadata_album_album_name"))
            track = TrackRef(name, artist, album, uri_id(row.get("spotify_track_uri"), "track"))
        play = _kept_play(out, track, _play_ms(row.get("ms_played")), "null row")
        if play is not None:
            out.plays.append(play)


def _parse_userdata(data: Any, f: ExportFile, out: ParsedExport) -> None:
    # Only the username; email, birthdate, address etc. are deliberately not read.
    if isinstance(data, dict):
        out.username = _text(data.get("username"))


_PARSERS = {
    "playlists": _parse_playlists,
    "library": _parse_library,
    "account_history": _parse_account_history,
    "extended_history": _parse_extended_history,
    "userdata": _parse_userdata,
}


def parse_export(source: ExportSource) -> ParsedExport:
    """Parse every recognised file; raise ExportError when none is a Spotify export file."""
    out = ParsedExport()
    for f in source:
        kind = classify(f.basename)
        if kind is None:
            continue
        data = source.read_json(f)
        try:
            _PARSERS[kind](data, f, out)
        except ExportError:
            raise
        except (TypeError, AttributeError, KeyError, ValueError, OverflowError, RecursionError) as exc:
            # A shape no Spotify export has (the parsers skip what they know to be odd): name the file.
            raise ExportError(f"{f.basename} has a structure no Spotify export has ({type(exc).__name__}: {exc})") from None
        out.files.setdefault(kind, []).append(f.basename)
    music_kinds = {"playlists", "library", "account_history", "extended_history"}
    if not music_kinds & out.files.keys():
        names = ", ".join(x.basename for x in source.files()[:5]) or "no JSON files"
        raise ExportError(
            f"{source.path.name} holds no Spotify export files (found: {names}). Expected Playlist1.json, "
            "YourLibrary.json, StreamingHistory_music_0.json or Streaming_History_Audio_*.json "
            "from spotify.com/account/privacy → Download your data"
        )
    return out
