"""Builders for the smallest valid profiles and feature-store profile rows."""

from __future__ import annotations

import pandas as pd

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track


def tiny_profile(uid: str, display_name: str | None = None) -> Profile:
    """A valid profile with one playlist of one track by one artist."""
    return Profile(
        user_id=uid,
        display_name=display_name,
        playlists=[Playlist(id="p", name="p", items=[PlaylistItem(track_id="t")])],
        tracks={"t": Track(id="t", name="t", artist_ids=["a"])},
        artists={"a": Artist(id="a", name="a")},
    )


def profile_rows(*user_ids: str, with_names: bool = True) -> pd.DataFrame:
    """``user_profiles`` rows, every column empty but the id, ``n_tracks`` and (unless told) a display name."""
    from soundmates.features.schema import USER_PROFILES_SCHEMA

    named = (lambda u: {"display_name": u.title()}) if with_names else (lambda u: {})
    rows = [{c: None for c in USER_PROFILES_SCHEMA.names} | {"user_id": u} | named(u) | {"n_tracks": 3} for u in user_ids]
    return pd.DataFrame(rows)
