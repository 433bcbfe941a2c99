"""Matches and consent for a profile read through Connect with Spotify (OAuth for one's own account).

Lives on the recommend floor: the OAuth client (``soundmates.spotify.connect``) only reads the
profile; matching it and storing it on consent is the Recommender's business.
"""

from __future__ import annotations

from typing import Any

from soundmates.config import Settings, get_settings
from soundmates.profiles import Profile, ProfileRepository
from soundmates.spotify.errors import SpotifyError

from .service import Recommender


def store_connected(profile: Profile, settings: Settings | None = None, *, recommender=None):
    """Consent given: keep the profile and queue it for the pipeline (``Recommender.add``). Returns the inbox entry."""
    if profile.source != "oauth":
        raise ValueError(f"store_connected takes a profile from Connect with Spotify, got source={profile.source!r}")
    settings = settings or get_settings()
    ProfileRepository(settings.profiles_dir).save(profile)
    if recommender is None:
        recommender = Recommender(settings)
    # The pipeline's ingest skips users whose profile is stored, so it goes straight to features.
    # Connect with Spotify proved ownership: an owner who removed their profile may come back
    # (from this newly read profile, once the pipeline has embedded it).
    return recommender.add(profile.user_id, restore_removed=True)


class _ConnectedProfileSource:
    """Stands in for the Ingestor inside :class:`Recommender`: hands over the profile already read via OAuth."""

    def __init__(self, profile: Profile):
        self.profile = profile

    def ingest_user(self, user_id: str, *, refresh: bool = False) -> Profile:
        if user_id != self.profile.user_id:
            raise SpotifyError(f"only the connected account {self.profile.user_id!r} can be read here", status=403)
        return self.profile

    def delete_user_data(self, user_id: str) -> dict[str, bool]:
        return {"raw": False, "profile": False}


def connected_recommender(profile: Profile, settings: Settings | None = None, *, share_with=None):
    """A :class:`Recommender` that reads this (not necessarily stored) profile instead of asking Spotify.

    Its ingestor is the profile in hand (the Recommender's documented ``ingestor_factory`` seam), so the
    person is embedded and matched like any live user and its ``match_detail`` explains their matches.
    ``share_with``: an existing Recommender whose feature store and text encoder are reused (the dashboard's).
    """
    kwargs: dict[str, Any] = {}
    if share_with is not None:
        settings = settings or share_with.settings
        kwargs = {"store": share_with.store, "encoder": share_with.encoder}
    return Recommender(settings or get_settings(), ingestor_factory=lambda _s, **_: _ConnectedProfileSource(profile), **kwargs)


def recommend_for(profile: Profile, k: int = 10, settings: Settings | None = None, *, recommender=None, progress=None):
    """Matches for a connected profile; stores nothing. ``recommender``: one to share the store and encoder with."""
    rec = connected_recommender(profile, settings, share_with=recommender)
    return rec.recommend(profile.user_id, k=k, consent=False, progress=progress)
