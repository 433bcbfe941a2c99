"""A new user matched live through the real ingest against the local Spotify server: nothing stored."""

from __future__ import annotations

import pytest

from soundmates.profiles import ProfileRepository, safe_filename
from tests.fixtures.spotify import world_user_ids
from tests.helpers.encoders import HashModel


@pytest.fixture
def live_setup(spotify_server, small_world):
    from soundmates.config import get_settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.pipelines import build_features, ingest_users
    from soundmates.pipelines.index import build_index

    spotify_server()
    settings = get_settings()
    ids = world_user_ids(small_world)
    stored, outsiders = ids[:8], ids[8:]
    summary = ingest_users(stored, settings=settings, progress=False)
    assert summary.ingested >= 5, summary
    encoder = TextEncoder(settings, model=HashModel(24))
    build_features(settings, encoder=encoder)
    assert build_index(settings, progress=False)["count"] >= 5
    return settings, encoder, set(summary.ingested_user_ids), outsiders


@pytest.mark.slow
def test_live_user_through_real_ingest_stores_nothing(live_setup):
    from soundmates.recommend import Recommender, UnknownUser

    settings, encoder, stored, outsiders = live_setup
    rec = Recommender(settings, encoder=encoder)
    repo = ProfileRepository(settings.profiles_dir)
    for uid in outsiders[:10]:
        try:
            res = rec.recommend(uid, k=5)
        except Exception as e:  # noqa: BLE001 - world users may legitimately have no public music playlists
            assert type(e).__name__ in ("NotEnoughData", "SpotifyRefused"), e
            continue
        assert not res.known and res.matches and uid not in [m.user_id for m in res.matches]
        assert {m.user_id for m in res.matches} <= stored
        assert not repo.exists(uid)
        assert not (settings.raw_dir / "users" / safe_filename(uid)).exists()
        break
    else:
        pytest.fail("no outsider could be matched live")
    with pytest.raises(UnknownUser):
        rec.recommend("no-such-user-anywhere", k=3)
