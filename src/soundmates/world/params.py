"""The world's generation parameters: rates of mess, the showcase users and the size limits.

Shared by the rooms that draw a world (users, playlists) and the one that writes it to disk
(``world.json`` records the rates and the showcase indices so a reader knows what to expect).
"""

from __future__ import annotations

MAX_USERS = 1_000_000
MAX_PLAYLISTS = 256  # per user (playlist index slots in a playlist id)

# Mess at realistic rates (fractions); stored in world.json so a reader knows what to expect.
DEFAULT_PARAMS: dict[str, float] = {
    "p_no_public_playlists": 0.07,
    "p_many_playlists": 0.02,  # 60-130 playlists: more than one page of /users/{id}/playlists
    "p_empty_playlist": 0.04,
    "p_huge_playlist_user": 0.004,  # one playlist of 2,000-6,000 items
    "p_podcast_user": 0.10,
    "p_local_user": 0.05,
    "p_null_playlist": 0.05,  # a playlist with a few null rows (tracks no longer available)
    "p_display_name_null": 0.05,
    "noise_other_community": 0.05,
}

# Users at these indices always show one kind of mess, so even a 50-user world exercises it
# (the rates above then add more at random).
SHOWCASE = {
    "many_playlists": 2,
    "huge_playlist": 3,
    "no_public_playlists": 5,
    "episodes_local_null": 6,
    "empty_playlist": 9,
}
