"""The Recommender end to end on a small hand-built world: stored profiles -> features -> index -> matches.

The text encoder is a deterministic hash model (no weights to load); the embedder is the model
stage's own ``get_embedder``, which with no model registered serves the scaled ``combined`` vector
("raw-features"), so these tests exercise the real features, store, model fallback, index and
explanations.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, ProfileRepository, Track
from soundmates.recommend import (
    InvalidReference,
    NotEnoughData,
    NothingBuiltYet,
    RecommendError,
    SpotifyRefused,
    UnknownUser,
)
from tests.helpers.encoders import HashModel

COMMUNITIES = {
    "rock": (["indie rock", "alternative rock", "post-punk", "shoegaze"], (1985, 2005)),
    "electro": (["techno", "house", "idm", "ambient"], (2008, 2022)),
    "jazz": (["bebop", "cool jazz", "hard bop", "modal jazz"], (1952, 1968)),
}
ARTISTS_PER = 8
TRACKS_PER_ARTIST = 5


def catalogue():
    artists, tracks, pools = {}, {}, {}
    for c, (genres, (y0, y1)) in COMMUNITIES.items():
        pools[c] = []
        for a in range(ARTISTS_PER):
            aid = f"{c}-artist-{a}"
            artists[aid] = Artist(id=aid, name=f"{c.title()} Artist {a}", genres=[genres[a % 4], genres[(a + 1) % 4]])
            for t in range(TRACKS_PER_ARTIST):
                tid = f"{aid}-t{t}"
                tracks[tid] = Track(id=tid, name=f"{c} song {a}.{t}", artist_ids=[aid], release_year=y0 + (a * 5 + t) % (y1 - y0))
                pools[c].append(tid)
    return artists, tracks, pools


ARTISTS, TRACKS, POOLS = catalogue()


def make_profile(uid: str, community: str, seed: int, n_playlists: int = 4, per: int = 10, name: str | None = None) -> Profile:
    rng = np.random.default_rng(seed)
    others = [c for c in COMMUNITIES if c != community]
    playlists = []
    for p in range(n_playlists):
        items = list(rng.choice(POOLS[community], size=per - 1, replace=False))
        items.append(rng.choice(POOLS[others[p % 2]]))  # a little outside taste
        playlists.append(Playlist(id=f"{uid}-pl{p}", name=f"{uid} mix {p}", items=[PlaylistItem(track_id=str(t)) for t in items]))
    used = {i.track_id for pl in playlists for i in pl.items}
    tracks = {t: TRACKS[t] for t in used}
    artists = {a: ARTISTS[a] for t in tracks.values() for a in t.artist_ids}
    return Profile(user_id=uid, display_name=name or uid.title(), playlists=playlists, tracks=tracks, artists=artists)


class FakeIngestor:
    """Behaves like spotify.ingest.Ingestor: saves the profile and a raw page where the ingest stage would
    (its ``user_data_dir`` seam for users who did not consent), and deletes them through the stage."""

    behaviours: dict = {}

    def __init__(self, settings, user_data_dir=None):
        from soundmates.spotify import ingest

        self.settings = settings
        self.user_data_dir = user_data_dir
        self.repo = ProfileRepository(ingest._profiles_dir(settings, user_data_dir))
        self.raw_users = ingest._users_raw_dir(settings, user_data_dir)

    def ingest_user(self, user_id, refresh=False):
        from soundmates.profiles import safe_filename

        what = self.behaviours.get(user_id)
        if isinstance(what, Exception):
            raise what
        if what is None:
            from soundmates.spotify.errors import UserNotFound

            raise UserNotFound(f"no user {user_id}", status=404)
        d = self.raw_users / safe_filename(user_id)
        d.mkdir(parents=True, exist_ok=True)
        (d / "user.json").write_text(json.dumps({"id": user_id}))
        self.repo.save(what)
        return what

    def delete_user_data(self, user_id):
        from soundmates.spotify.ingest import delete_user_data

        return delete_user_data(user_id, self.settings, user_data_dir=self.user_data_dir)


@pytest.fixture(scope="module")
def world_template(tmp_path_factory):
    """18 stored users in three taste communities, features built, index published (built once, copied per test)."""
    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.index import UserIndex
    from soundmates.pipelines.features import build_features
    from soundmates.pipelines.index import build_index

    settings = Settings(data_dir=tmp_path_factory.mktemp("recommend_world"))
    repo = ProfileRepository(settings.profiles_dir)
    users = {}
    for ci, c in enumerate(COMMUNITIES):
        for i in range(6):
            uid = f"{c}{i}"
            repo.save(make_profile(uid, c, seed=ci * 100 + i))
            users[uid] = c
            raw = settings.raw_dir / "users" / uid
            raw.mkdir(parents=True, exist_ok=True)
            (raw / "user.json").write_text("{}")
    summary = build_features(settings, encoder=TextEncoder(settings, model=HashModel(24)))
    assert not summary["rejected"], summary["rejected"]
    out = build_index(settings, progress=False)
    assert out["count"] == 18 and out["model_version"] == "raw-features"
    assert UserIndex(settings).manifest()["feature_data_version"] == out["feature_data_version"]
    return settings.data_dir, users


@pytest.fixture
def world(settings, world_template):
    import shutil

    template, users = world_template
    shutil.copytree(template, settings.data_dir, dirs_exist_ok=True)
    return users


@pytest.fixture
def rec(settings, world, hash_encoder):
    from soundmates.recommend import Recommender

    FakeIngestor.behaviours = {}
    return Recommender(settings, encoder=hash_encoder, ingestor_factory=FakeIngestor)


def _really_shared(profile_a: Profile, profile_b: Profile, artist_id: str) -> bool:
    def has(p):
        return any(artist_id in p.tracks[i.track_id].artist_ids for pl in p.playlists for i in pl.items)

    return has(profile_a) and has(profile_b)


def test_known_user_gets_their_community_with_true_reasons(rec, world, settings):
    steps = []
    res = rec.recommend("https://open.spotify.com/user/rock0?si=abc", k=5, progress=steps.append)
    assert res.user_id == "rock0" and res.known and steps
    ids = [m.user_id for m in res.matches]
    assert len(ids) == 5 and "rock0" not in ids
    assert all(world[u] == "rock" for u in ids[:3])
    repo = ProfileRepository(settings.profiles_dir)
    me = repo.load("rock0")
    scores = [m.score for m in res.matches]
    assert scores == sorted(scores, reverse=True)
    for m in res.matches:
        assert 0.0 <= m.percentile <= 100.0
        them = repo.load(m.user_id)
        for a in m.shared_artists:
            assert _really_shared(me, them, a.id), a
        mine = {i.track_id for pl in me.playlists for i in pl.items}
        theirs = {i.track_id for pl in them.playlists for i in pl.items}
        assert {t.id for t in m.shared_tracks} <= mine & theirs
        assert m.profile_url.endswith(f"/user/{m.user_id}")
    top = res.matches[0]
    assert top.shared_genres and top.percentile > 50 and top.era_overlap is not None
    assert top.display_name == repo.load(top.user_id).display_name


def test_never_own_match_even_asking_for_everyone(rec, world):
    for uid in world:
        res = rec.recommend(uid, k=100)
        assert uid not in [m.user_id for m in res.matches]
        assert len(res.matches) == len(world) - 1


def test_diversity_reorders_but_keeps_relevance(rec):
    plain = rec.recommend("electro1", k=6)
    diverse = rec.recommend("electro1", k=6, diversity=0.9)
    assert [m.user_id for m in plain.matches] != [m.user_id for m in diverse.matches]
    assert diverse.matches[0].user_id == plain.matches[0].user_id  # the best match stays first
    with pytest.raises(ValueError, match="diversity"):
        rec.recommend("electro1", diversity=2.0)


def test_unknown_user_is_matched_live_and_nothing_is_stored(rec, settings, world):
    FakeIngestor.behaviours["newjazz"] = make_profile("newjazz", "jazz", seed=999)
    before = sorted(p.name for p in settings.data_dir.rglob("*") if "newjazz" in p.name)
    res = rec.recommend("spotify:user:newjazz", k=4)
    assert not res.known and not res.stored
    assert all(world[m.user_id] == "jazz" for m in res.matches[:3])
    after = sorted(p.name for p in settings.data_dir.rglob("*") if "newjazz" in p.name)
    assert before == after == []
    assert rec.index.vector("newjazz") is None and len(rec.index.fresh) == 0
    from soundmates.store import inbox

    assert inbox.get(rec.store, "newjazz") is None
    # The dashboard asks for details of a live user's match afterwards.
    detail = rec.match_detail("newjazz", res.matches[0].user_id)
    assert detail.score == pytest.approx(res.matches[0].score, abs=1e-3)
    assert len(detail.year_hist_user) == len(detail.year_bins)


def test_consent_stores_and_makes_findable_at_once(rec, settings, world):
    FakeIngestor.behaviours["newrock"] = make_profile("newrock", "rock", seed=4242, name="New Rocker")
    res = rec.recommend("newrock", k=3, consent=True)
    assert res.stored and not res.known
    assert ProfileRepository(settings.profiles_dir).exists("newrock")
    from soundmates.store import inbox

    assert inbox.get(rec.store, "newrock").status == "pending"
    # Before any rebuild, another rock fan can find them (fresh buffer).
    found = rec.recommend("rock1", k=17)
    new = [m for m in found.matches if m.user_id == "newrock"]
    assert new and new[0].source == "fresh" and new[0].display_name == "New Rocker"
    assert new[0].shared_genres  # explained from the stored profile


def test_remove_takes_effect_at_once_and_deletes_stored_data(rec, settings, world):
    victim = rec.recommend("jazz0", k=1).matches[0].user_id
    from soundmates.spotify.connect import TokenStore
    from soundmates.store import inbox

    inbox.add_request(rec.store, victim, victim)
    tokens = TokenStore(settings.data_dir / "oauth" / "tokens")
    tokens.save(victim, {"access_token": "a", "refresh_token": "r", "expires_at": 0, "scope": ""})
    report = rec.remove(f"https://open.spotify.com/user/{victim}")
    assert report["hidden_from_results"] and report["profile_deleted"] and report["raw_responses_deleted"]
    assert report["oauth_tokens_deleted"] and tokens.load(victim) is None  # a connected account's tokens go too
    assert report["store_groups"].get("user_features") == 3  # views full, a, b
    assert report["store_groups"].get("user_profiles") == 1
    assert report["inbox_request_deleted"] and inbox.get(rec.store, victim) is None  # the queued request too
    for uid in world:
        if uid != victim:
            assert victim not in [m.user_id for m in rec.recommend(uid, k=17).matches]
    assert not ProfileRepository(settings.profiles_dir).exists(victim)
    assert not (settings.raw_dir / "users" / victim).exists()
    assert rec.store.read("user_features", keys=[victim]).empty
    # Other users' data is untouched.
    assert len(rec.store.read("user_profiles")) == len(world) - 1
    again = rec.remove(victim)  # idempotent
    assert again["store_rows_deleted"] == 0 and not again["profile_deleted"]
    # A rebuild from the store leaves them out for good.
    from soundmates.pipelines.index import build_index

    assert build_index(settings, progress=False)["count"] == len(world) - 1


def test_errors_are_clear(rec, settings):
    from soundmates.spotify.errors import ApiRefused
    from soundmates.spotify.ingest import NoPublicPlaylists

    with pytest.raises(InvalidReference, match="Accepted forms"):
        rec.recommend("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M")
    with pytest.raises(UnknownUser, match="ghost"):
        rec.recommend("ghost")
    FakeIngestor.behaviours["quiet"] = NoPublicPlaylists("no public playlists")
    with pytest.raises(NotEnoughData, match="no public playlists"):
        rec.recommend("quiet")
    FakeIngestor.behaviours["locked"] = ApiRefused("403 on /users/locked/playlists", status=403)
    with pytest.raises(SpotifyRefused, match="February 2026"):
        rec.recommend("locked")
    podcasts = Profile(user_id="pods", playlists=[Playlist(id="p", name="pods", items=[], skipped_episodes=12)])
    FakeIngestor.behaviours["pods"] = podcasts
    with pytest.raises(NotEnoughData, match="pods"):
        rec.recommend("pods")
    with pytest.raises(ValueError, match="k must be"):
        rec.recommend("rock0", k=0)
    assert issubclass(NothingBuiltYet, RecommendError)


def test_thin_profile_warns(rec):
    FakeIngestor.behaviours["thin"] = make_profile("thin", "electro", seed=5, n_playlists=1, per=6)
    res = rec.recommend("thin", k=3)
    assert any("thin" in w for w in res.warnings)
    assert res.matches


def test_nothing_built_yet(settings, hash_encoder):
    from soundmates.recommend import Recommender

    r = Recommender(settings, encoder=hash_encoder, ingestor_factory=FakeIngestor)
    with pytest.raises(NothingBuiltYet, match="soundmates index build"):
        r.recommend("anyone")


def test_status_map_and_inbox(rec, world):
    st = rec.pipeline_status()
    assert st.users_stored == 18 and st.index_size == 18 and st.index_version
    assert st.index_parameters["n_trees"] >= 1 and st.fresh_buffer_size == 0
    assert set(st.inbox_counts) >= {"pending", "done"}
    m = rec.user_map()
    assert sorted(m.user_ids) == sorted(world) and len(m.x) == len(m.y) == 18
    assert set(m.display_names) == {u.title() for u in world}
    # Communities are apart on the map: each user's nearest map neighbour is mostly from their community.
    xy = np.c_[m.x, m.y]
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(18) * 1e9
    same = sum(world[m.user_ids[i]] == world[m.user_ids[int(j)]] for i, j in enumerate(d.argmin(1)))
    assert same >= 14
    entry = rec.add("spotify:user:someone_new")
    assert entry.status == "pending" and rec.inbox_status("someone_new").status == "pending"
    assert rec.inbox_status("never_asked") is None


def test_cli_recommend_json(rec, monkeypatch, settings, hash_encoder):
    from typer.testing import CliRunner

    import soundmates.recommend.service as service
    from soundmates.cli.main import app

    real = service.Recommender
    monkeypatch.setattr(
        service,
        "Recommender",
        lambda: real(settings, encoder=hash_encoder, ingestor_factory=FakeIngestor),
    )
    out = CliRunner().invoke(app, ["recommend", "rock2", "--k", "3", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["user_id"] == "rock2" and len(data["matches"]) == 3 and "warnings" in data
    assert data["embedder"] == {"name": "raw_cosine", "version": "raw-features"}  # the served method
    for key in ("user_id", "display_name", "score", "percentile", "shared_genres", "shared_artists", "shared_tracks"):
        assert key in data["matches"][0]
    bad = CliRunner().invoke(app, ["recommend", "spotify:track:xyz", "--json"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["kind"] == "invalid_reference"
    gone = CliRunner().invoke(app, ["remove", "rock2", "--json"])
    assert gone.exit_code == 0 and json.loads(gone.stdout)["profile_deleted"] is True


def test_cli_index_build_status_and_add(rec, monkeypatch, settings, hash_encoder):
    from typer.testing import CliRunner

    import soundmates.recommend.service as service
    from soundmates.cli.main import app

    out = CliRunner().invoke(app, ["index", "build", "--json"])
    assert out.exit_code == 0, out.output
    built = json.loads(out.stdout)
    assert built["count"] == 18 and built["parameters"]["search_k"] >= 1 and built["version"]
    st = json.loads(CliRunner().invoke(app, ["index", "status", "--json"]).stdout)
    assert st["version"] == built["version"] and st["count"] == 18
    real = service.Recommender
    monkeypatch.setattr(service, "Recommender", lambda: real(settings, encoder=hash_encoder, ingestor_factory=FakeIngestor))
    added = CliRunner().invoke(app, ["add", "https://open.spotify.com/user/fan42", "--json"])
    assert added.exit_code == 0 and json.loads(added.stdout)["status"] == "pending"
    for cmd in (["index", "build"], ["index", "status"], ["recommend"], ["add"], ["remove"]):
        assert CliRunner().invoke(app, [*cmd, "--help"]).exit_code == 0


# --- serving as evaluated: separate query and candidate sides ------------------------------------------------
class TwoSidedEmbedder:
    """Separate query and candidate sides, like separate towers, over a tight population.

    Candidate side: a shared axis plus a per-user part (from the features, plus a fixed per-user random
    direction, so that in this many dimensions every pair of users is about equally close: a tight cone).
    Query side: the same, nearer the axis. A query then scores higher against everyone than any two
    candidates score against each other, as independently trained towers can.
    """

    name = "two_sided_test"
    version = "two-sided-test"

    def __init__(self, candidate_axis: float = 1.5, query_axis: float = 3.0, taste: float = 0.3):
        from soundmates.model.embedder import RawFeatureEmbedder

        self.base = RawFeatureEmbedder()
        self.axes = candidate_axis, query_axis
        self.taste = taste

    @property
    def dim(self):
        return self.base.dim

    def _side(self, frame, axis):
        b = self.base.embed(frame).astype(np.float64)
        noise = np.stack(
            [
                np.random.default_rng(int(hashlib.sha256(str(u).encode()).hexdigest()[:8], 16)).normal(size=b.shape[1])
                for u in frame["user_id"]
            ]
        )
        d = np.random.default_rng(0).normal(size=b.shape[1])
        d /= np.linalg.norm(d)
        part = self.taste * b / np.linalg.norm(b, axis=1, keepdims=True) + noise / np.sqrt(b.shape[1])
        part -= (part @ d)[:, None] * d
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        x = part + axis * d
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def embed(self, frame):
        return self._side(frame, self.axes[0])

    def embed_query(self, frame):
        return self._side(frame, self.axes[1])


@pytest.fixture(scope="module")
def tight_template(tmp_path_factory):
    """20 users of one taste (rock), features built, the index built from the two-sided candidate side."""
    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.index import UserIndex
    from soundmates.pipelines.features import build_features
    from soundmates.store import get_store

    settings = Settings(data_dir=tmp_path_factory.mktemp("tight_world"))
    repo = ProfileRepository(settings.profiles_dir)
    for i in range(20):
        repo.save(make_profile(f"fan{i}", "rock", seed=7000 + i))
    build_features(settings, encoder=TextEncoder(settings, model=HashModel(24)))
    frame = get_store(settings).read("user_features")
    frame = frame[frame["view"] == "full"].reset_index(drop=True)
    emb = TwoSidedEmbedder()
    UserIndex(settings).build(list(frame["user_id"]), emb.embed(frame), {"model_version": emb.version})
    return settings.data_dir


@pytest.fixture
def two_sided(settings, tight_template, hash_encoder):
    import shutil

    from soundmates.recommend import Recommender

    shutil.copytree(tight_template, settings.data_dir, dirs_exist_ok=True)
    emb = TwoSidedEmbedder()
    FakeIngestor.behaviours = {}
    return Recommender(settings, encoder=hash_encoder, embedder=emb, ingestor_factory=FakeIngestor), emb


def _features(rec, user_ids):
    frame = rec.store.read("user_features", keys=user_ids)
    return frame[frame["view"] == "full"].set_index("user_id").loc[user_ids].reset_index()


def test_percentile_is_calibrated_on_served_scores_and_top_match_is_below_100(two_sided):
    rec, emb = two_sided
    res = rec.recommend("fan0", k=5)
    assert res.embedder.name == "two_sided_test" and res.embedder.version == "two-sided-test"
    top = res.matches[0]
    # The flaw being fixed: against candidate·candidate pairs every served top match reads 100%.
    assert rec.index.percentile(top.score) == 100.0
    ids, cands = rec.index.all_vectors()
    queries = emb.embed_query(_features(rec, list(ids)))
    table = queries @ cands.T
    pairs = table[~np.eye(len(ids), dtype=bool)]  # every (query, candidate) pair of two distinct users
    assert top.percentile < 100.0
    assert top.percentile == pytest.approx(100.0 * (pairs < top.score).mean(), abs=0.2)
    # The list ranks by the served score: fan0's query side against each candidate side.
    q0 = queries[list(ids).index("fan0")]
    for m in res.matches:
        assert m.score == pytest.approx(float(q0 @ cands[list(ids).index(m.user_id)]), abs=1e-4)


def test_list_and_detail_show_the_same_score(two_sided):
    rec, emb = two_sided
    FakeIngestor.behaviours["outsider"] = make_profile("outsider", "rock", seed=31337)
    for who in ("fan3", "outsider"):  # a stored user and one fetched live
        res = rec.recommend(who, k=6)
        for m in res.matches:
            detail = rec.match_detail(who, m.user_id)
            assert (detail.score, detail.percentile) == (m.score, m.percentile), (who, m.user_id)


def test_consenting_user_is_stored_with_the_candidate_side(two_sided, settings):
    from soundmates.pipelines.features import featurize_profile

    rec, emb = two_sided
    profile = make_profile("joiner", "rock", seed=4711, name="Joiner")
    FakeIngestor.behaviours["joiner"] = profile
    res = rec.recommend("joiner", k=3, consent=True)
    assert res.stored
    frame, _ = featurize_profile(profile, rec.encoder, settings)
    stored = rec.index.fresh.vector("joiner")
    candidate, query = emb.embed(frame)[0], emb.embed_query(frame)[0]
    assert np.allclose(stored, candidate, atol=1e-5)
    assert not np.allclose(stored, query, atol=1e-2)  # the sides really differ here
    # Others find the newcomer with the score the index serves for everyone: query side vs candidate side.
    found = {m.user_id: m for m in rec.recommend("fan1", k=20).matches}
    q1 = emb.embed_query(_features(rec, ["fan1"]))[0]
    assert found["joiner"].source == "fresh"
    assert found["joiner"].score == pytest.approx(float(q1 @ candidate), abs=1e-4)


def test_remove_then_add_by_anyone_does_not_bring_them_back(rec, settings, world):
    from soundmates.pipelines.index import build_index
    from soundmates.recommend import RemovedByOwner

    victim = rec.recommend("jazz0", k=1).matches[0].user_id
    old_profile = ProfileRepository(settings.profiles_dir).load(victim)
    rec.remove(victim)
    with pytest.raises(RemovedByOwner, match="Connect with Spotify"):
        rec.add(f"https://open.spotify.com/user/{victim}")
    # Someone searches for them with consent (Spotify still shows the profile): nothing of theirs is written.
    FakeIngestor.behaviours[victim] = old_profile
    before = sorted(str(p.relative_to(settings.data_dir)) for p in settings.data_dir.rglob("*") if victim in p.name)
    res = rec.recommend(victim, k=3, consent=True)
    assert not res.stored and not res.known and any("removed" in w for w in res.warnings)
    after = sorted(str(p.relative_to(settings.data_dir)) for p in settings.data_dir.rglob("*") if victim in p.name)
    assert before == after == []
    from soundmates.store import inbox

    assert inbox.get(rec.store, victim) is None and victim not in rec.index.fresh
    # The tombstone survives a rebuild; nobody is ever served the old vector.
    build_index(settings, progress=False)
    assert rec.index.is_removed(victim) and rec.index.vector(victim) is None
    for uid in world:
        if uid != victim:
            assert victim not in [m.user_id for m in rec.recommend(uid, k=17).matches]
    # The operator flag only queues a fresh ingest: still not findable before the pipeline ran.
    assert rec.add(victim, restore_removed=True).status == "pending"
    assert rec.index.is_removed(victim)
    assert victim not in [m.user_id for m in rec.recommend("jazz3", k=17).matches]


def test_status_reads_the_model_stages_evaluation(rec, monkeypatch):
    import soundmates.pipelines.model as model_stage

    report = {
        "protocol": "served: full profile vs every user",
        "served": "als",
        "reason": "als beats two_tower",
        "users": 374,
        "candidates": 1874,
        "methods": {
            "als": {"taste_ndcg@10": 0.84, "recall@10": 0.79, "ci95": {"taste_ndcg@10": [0.82, 0.86]}, "setting": {"alpha": 2}},
            "two_tower": {"taste_ndcg@10": 0.8, "recall@10": float("nan")},
            "artist_overlap": {"skipped": "cannot work on disjoint halves"},
        },
    }
    asked = []
    monkeypatch.setattr(model_stage, "stored_evaluation", lambda settings: asked.append(settings) or report)
    ev = rec.pipeline_status().evaluation
    assert asked == [rec.settings]
    assert ev.served == "als" and ev.reason == "als beats two_tower" and (ev.users, ev.candidates) == (374, 1874)
    assert set(ev.methods) == {"als", "two_tower"}  # a skipped method has no figures to chart
    assert ev.methods["als"].metrics == {"taste_ndcg@10": 0.84, "recall@10": 0.79}
    assert ev.methods["als"].ci95 == {"taste_ndcg@10": [0.82, 0.86]}
    assert ev.methods["two_tower"].metrics == {"taste_ndcg@10": 0.8}  # NaN is not a figure
    monkeypatch.setattr(model_stage, "stored_evaluation", lambda settings: (_ for _ in ()).throw(LookupError("none")))
    assert rec.pipeline_status().evaluation is None


def test_feedback_tuned_embedder_serves_on_the_base_index_and_stores_newcomers_with_the_candidate_side(
    settings, tight_template, hash_encoder
):
    """A feedback-tuned embedder on the index built with its base: the newcomer is stored with the base's
    candidate side under the index's model version (so it is findable at once), and queries use the tuned map."""
    import shutil

    from soundmates.model.feedback_tuning import FeedbackTuned
    from soundmates.pipelines.features import featurize_profile
    from soundmates.recommend import Recommender

    shutil.copytree(tight_template, settings.data_dir, dirs_exist_ok=True)
    base = TwoSidedEmbedder()
    dim = int(Recommender(settings).index.manifest()["dim"])
    weight = np.eye(dim, dtype=np.float32) + np.random.default_rng(5).normal(0, 0.3, (dim, dim)).astype(np.float32)
    tuned = FeedbackTuned(base, weight, votes=12, version="fb-twosided-test")
    assert tuned.candidate_version == base.version == Recommender(settings).index.manifest()["model_version"]
    FakeIngestor.behaviours = {"joiner": make_profile("joiner", "rock", seed=4711, name="Joiner")}
    rec = Recommender(settings, encoder=hash_encoder, embedder=tuned, ingestor_factory=FakeIngestor)
    res = rec.recommend("joiner", k=3, consent=True)
    assert res.stored and (res.embedder.name, res.embedder.version) == ("two_sided_test+feedback", "fb-twosided-test")
    assert not [w for w in res.warnings if "index build" in w], res.warnings
    frame, _ = featurize_profile(FakeIngestor.behaviours["joiner"], rec.encoder, settings)
    assert np.allclose(rec.index.fresh.vector("joiner"), base.embed(frame)[0], atol=1e-5)
    assert rec.index.fresh.entries().model_versions.tolist() == [base.version]
    found = {m.user_id: m for m in rec.recommend("fan1", k=20).matches}
    q1 = tuned.embed_query(_features(rec, ["fan1"]))[0]
    assert not np.allclose(q1, base.embed_query(_features(rec, ["fan1"]))[0], atol=1e-2)
    assert found["joiner"].source == "fresh"
    assert found["joiner"].score == pytest.approx(float(q1 @ base.embed(frame)[0]), abs=1e-4)
