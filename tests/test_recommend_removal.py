"""Removal is sticky, end to end against the local Spotify server: remove, then add by anyone, by an operator.

After ``remove`` the old vector is never served again (also across index rebuilds); ``add`` or a
consenting search by anyone does not bring the profile back; with the operator flag the profile is
fetched afresh and findable only once the pipeline (``process_inbox``) has embedded the new data.
The pipeline embeds in the served index's space, also between a promotion and the next build.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from soundmates.profiles import ProfileRepository, safe_filename
from tests.fixtures.spotify import spotify_env, world_user_ids

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built_template(small_world, tmp_path_factory):
    """10 users ingested from the local server, features and index built: once per module."""
    from soundmates.config import Settings
    from soundmates.pipelines import build_features, ingest_users
    from soundmates.pipelines.index import build_index
    from soundmates.world.server import SpotifyServer

    server = SpotifyServer(small_world, port=0, mode="full").start()
    data_dir = tmp_path_factory.mktemp("removal_world")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"SOUNDMATES_DATA_DIR": str(data_dir), **spotify_env(server)}.items():
            mp.setenv(key, value)
        settings = Settings()
        summary = ingest_users(world_user_ids(small_world)[:10], settings=settings, progress=False)
        assert summary.ingested >= 6, summary
        build_features(settings)
        assert build_index(settings, progress=False)["count"] >= 6
    server.stop()
    return data_dir, sorted(summary.ingested_user_ids)


@pytest.fixture
def built(built_template, spotify_server):
    """A private copy of the built world, this test's settings and local Spotify server pointed at it."""
    import shutil

    from soundmates.config import get_settings

    spotify_server()
    settings = get_settings()
    shutil.copytree(built_template[0], settings.data_dir, dirs_exist_ok=True)
    return settings, list(built_template[1])


def _everyone_sees(rec, users, victim) -> bool:
    """True if ``victim`` appears in any other user's full match list."""
    return any(victim in [m.user_id for m in rec.recommend(u, k=len(users)).matches] for u in users if u != victim)


def test_removed_profile_comes_back_only_by_operator_flag_and_only_from_new_data(built):
    from soundmates.cli.main import app
    from soundmates.pipelines import process_inbox
    from soundmates.pipelines.index import build_index
    from soundmates.recommend import Recommender, RemovedByOwner
    from soundmates.store import inbox

    settings, users = built
    rec = Recommender(settings)
    victim = rec.recommend(users[0], k=1).matches[0].user_id
    assert _everyone_sees(rec, users, victim)

    rec.remove(victim)
    assert rec.index.is_removed(victim) and rec.index.vector(victim) is None
    assert not _everyone_sees(rec, users, victim)

    # Anyone asking to add them again is refused, on the API and on the CLI (one line, no traceback).
    with pytest.raises(RemovedByOwner, match="--restore-removed"):
        rec.add(victim)
    out = CliRunner().invoke(app, ["add", f"spotify:user:{victim}", "--json"])
    assert out.exit_code == 1 and json.loads(out.stdout)["kind"] == "removed"
    assert "Traceback" not in out.output
    # A consenting search for them matches live but stores nothing and makes nobody find them.
    res = rec.recommend(victim, k=3, consent=True)
    assert not res.stored and any("removed" in w for w in res.warnings)
    assert not ProfileRepository(settings.profiles_dir).exists(victim)
    assert inbox.get(rec.store, victim) is None and victim not in rec.index.fresh
    # A rebuild (the store no longer has them; the tombstone stays) still leaves them out.
    build_index(settings, progress=False)
    assert rec.index.is_removed(victim) and not _everyone_sees(rec, users, victim)

    # The operator flag queues a fresh ingest; until the pipeline has run, nobody finds them.
    out = CliRunner().invoke(app, ["add", f"spotify:user:{victim}", "--restore-removed", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["status"] == "pending"
    assert rec.index.is_removed(victim) and not _everyone_sees(rec, users, victim)
    assert not (settings.raw_dir / "users" / safe_filename(victim)).exists()

    summary = process_inbox(settings=settings)
    assert victim in summary["done"], summary
    # New data: raw pages fetched again from Spotify, features stored again, and that vector is served.
    assert (settings.raw_dir / "users" / safe_filename(victim)).exists()
    assert len(rec.store.read("user_features", keys=[victim])) == 3
    assert not rec.index.is_removed(victim) and rec.index.vector(victim) is not None
    assert _everyone_sees(rec, users, victim)
    # A later rebuild keeps serving them (from the new data only).
    build_index(settings, progress=False)
    assert _everyone_sees(rec, users, victim)


def test_a_removed_user_who_connects_with_spotify_can_come_back(built):
    from soundmates.pipelines import process_inbox
    from soundmates.recommend import Recommender
    from soundmates.recommend.connected import store_connected

    settings, users = built
    rec = Recommender(settings)
    me = users[1]
    profile = ProfileRepository(settings.profiles_dir).load(me).model_copy(update={"source": "oauth"})
    rec.remove(me)
    assert not _everyone_sees(rec, users, me)
    entry = store_connected(profile, settings, recommender=rec)  # ownership proven by OAuth
    assert entry.status == "pending" and not _everyone_sees(rec, users, me)
    assert me in process_inbox(settings=settings)["done"]
    assert _everyone_sees(rec, users, me)


class _PromotedLater:
    """A model promoted after the index was built: another space, another dimension."""

    name, version, dim = "promoted_later", "promoted-later", 8

    def embed(self, frame):
        return np.ones((len(frame), self.dim), dtype=np.float32) / np.sqrt(self.dim)

    embed_query = embed


def test_a_user_added_between_a_promotion_and_the_next_build_is_findable_in_the_index_space(built, small_world, monkeypatch):
    from soundmates.model import embedder as model_embedder
    from soundmates.pipelines import process_inbox
    from soundmates.recommend import Recommender
    from soundmates.store import inbox

    settings, users = built
    rec = Recommender(settings)
    assert rec.index.manifest()["model_version"] == model_embedder.RAW_FEATURES_VERSION
    served = model_embedder.get_embedder
    monkeypatch.setattr(
        model_embedder,
        "get_embedder",
        lambda s=None, version=None: _PromotedLater() if version is None else served(s, version=version),
    )
    newcomer = world_user_ids(small_world)[10]  # not among the ingested first ten
    inbox.add_request(rec.store, newcomer, f"spotify:user:{newcomer}", source="test")

    summary = process_inbox(settings=settings)
    assert summary["done"] == [newcomer], summary
    assert summary["model_version"] == model_embedder.RAW_FEATURES_VERSION
    # Stored with the candidate side of the index's model, so everyone can find them before the next build.
    frame = rec.store.read("user_features", keys=[newcomer])
    want = model_embedder.RawFeatureEmbedder().embed(frame[frame["view"] == "full"])[0]
    assert np.allclose(rec.index.vector(newcomer), want, atol=1e-5)
    assert _everyone_sees(rec, [*users, newcomer], newcomer)
