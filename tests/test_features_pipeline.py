"""build_features end to end into the embedded store: incremental, rejections, scaler reuse, serving, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundmates.features import schema as S
from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, ProfileRepository, Track

GENRES = ["indie rock", "shoegaze", "techno", "house", "jazz", "bossa nova"]


def make_profile(uid: str, genre_pair: tuple[int, int], n_tracks: int = 8, year0: int = 1990) -> Profile:
    arts = {f"{uid}-a{k}": Artist(id=f"{uid}-a{k}", name=f"Band {g}", genres=[GENRES[g]]) for k, g in enumerate(genre_pair)}
    tracks = {
        f"{uid}-t{i}": Track(
            id=f"{uid}-t{i}",
            name=f"T{i}",
            artist_ids=[f"{uid}-a{i % 2}"],
            release_year=year0 + i,
            popularity=40 + i,
            explicit=i % 4 == 0,
        )
        for i in range(n_tracks)
    }
    half = n_tracks // 2
    pls = [
        Playlist(id=f"{uid}-p1", name="one", items=[PlaylistItem(track_id=f"{uid}-t{i}") for i in range(half)]),
        Playlist(id=f"{uid}-p2", name="two", items=[PlaylistItem(track_id=f"{uid}-t{i}") for i in range(half, n_tracks)]),
    ]
    return Profile(user_id=uid, display_name=uid.upper(), playlists=pls, tracks=tracks, artists=arts)


@pytest.fixture
def world(settings):
    repo = ProfileRepository(settings.profiles_dir)
    for i, uid in enumerate(["ana", "bo", "cy", "di"]):
        repo.save(make_profile(uid, (i % 3 * 2, i % 3 * 2 + 1)))
    repo.save(Profile(user_id="podcaster", playlists=[Playlist(id="x", name="pods", skipped_episodes=9)]))
    return repo


def test_build_incremental_and_rejections(settings, world, encoder):
    from soundmates.features.scaler import load_scaler
    from soundmates.pipelines.features import build_features
    from soundmates.store import get_store

    first = build_features(settings, encoder=encoder)
    assert first["users"] == 4 and first["updated"] == 4 and first["unchanged"] == 0
    assert [r["user_id"] for r in first["rejected"]] == ["podcaster"]
    assert "episodes=9" in first["rejected"][0]["reason"]
    # 6 genres + 6 band names, each encoded or found in the catalogue seed (the genres are catalogue names)
    assert first["refit_scaler"] and first["encoder"]["encoded"] + first["encoder"]["seed_hits"] == len(GENRES) + 6

    store = get_store(settings)
    feats = store.read(S.USER_FEATURES)
    assert len(feats) == 12 and set(feats["view"]) == set(S.VIEWS)
    full = feats[feats["view"] == "full"].set_index("user_id")
    # Scaled with the persisted scaler: the full views of the training users have mean ~0 per dimension.
    combined = np.stack(full["combined"].to_list())
    assert combined.shape == (4, S.combined_dim(encoder.dim))
    np.testing.assert_allclose(combined.mean(axis=0), 0.0, atol=1e-5)
    profiles = store.read(S.USER_PROFILES).set_index("user_id")
    assert profiles.loc["ana", "display_name"] == "ANA" and profiles.loc["ana", "n_tracks"] == 8
    scaler_v1 = load_scaler(settings)

    # Nothing changed: nothing recomputed, no new data version, the model not called.
    second = build_features(settings, encoder=encoder)
    assert second["updated"] == 0 and second["unchanged"] == 4 and second["users"] == 4
    assert second["data_version"] == first["data_version"] and second["encoder"]["encoded"] == 0

    # One profile changes: only that user is recomputed, with the same scaler.
    world.save(make_profile("bo", (4, 5), n_tracks=10, year0=1960))
    third = build_features(settings, encoder=encoder)
    assert third["updated"] == 1 and third["unchanged"] == 3 and not third["refit_scaler"]
    assert load_scaler(settings).version == scaler_v1.version
    bo = store.read(S.USER_FEATURES, keys=["bo"]).set_index("view")
    assert bo.loc["full", "n_tracks"] == 10 and bo.loc["full", "year_mean"] == pytest.approx(1964.5)
    assert len(store.read(S.USER_FEATURES)) == 12  # upserted, not duplicated

    # --force refits and recomputes everyone; the previous scaler stays on disk as v1.
    forced = build_features(settings, encoder=encoder, force=True)
    assert forced["updated"] == 4 and forced["refit_scaler"] and forced["scaler_version"] == scaler_v1.version + 1
    assert (settings.data_dir / "features" / f"scaler-v{scaler_v1.version}.json").exists()


def test_unknown_and_corrupt_profiles_are_rejected_not_fatal(settings, world, encoder):
    from soundmates.pipelines.features import build_features

    world.path("broken").write_text("{ this is not json")
    out = build_features(settings, user_ids=["ana", "nobody", "broken"], encoder=encoder)
    reasons = {r["user_id"]: r["reason"] for r in out["rejected"]}
    assert "no profile stored" in reasons["nobody"]
    assert "unreadable profile file" in reasons["broken"]
    assert out["users"] >= 1


def test_featurize_profile_for_serving_uses_persisted_scaler_and_stores_nothing(settings, world, encoder):
    from soundmates.features.scaler import ScalerError
    from soundmates.features.taste import Rejected
    from soundmates.pipelines.features import build_features, featurize_profile
    from soundmates.store import get_store

    with pytest.raises(ScalerError, match="features build"):
        featurize_profile(world.load("ana"), encoder, settings)
    build_features(settings, encoder=encoder)
    store = get_store(settings)
    version = store.data_version(S.USER_FEATURES)
    rows, meta = featurize_profile(world.load("cy"), encoder, settings)
    assert list(rows["view"]) == ["full"] and meta["user_id"] == "cy"
    stored = store.read(S.USER_FEATURES, keys=["cy"]).set_index("view").loc["full", "combined"]
    np.testing.assert_allclose(rows["combined"].iloc[0], stored, atol=1e-5)  # same scaler at serving time
    newcomer = make_profile("zed", (0, 5))
    rows, _ = featurize_profile(newcomer, encoder, settings)
    assert len(rows.iloc[0]["combined"]) == S.combined_dim(encoder.dim)
    assert store.data_version(S.USER_FEATURES) == version and store.read(S.USER_FEATURES, keys=["zed"]).empty
    with pytest.raises(Rejected, match="no music tracks"):
        featurize_profile(world.load("podcaster"), encoder, settings)


def test_cli_features_build_json(settings, world):
    from typer.testing import CliRunner

    from soundmates.cli.main import app

    result = CliRunner().invoke(app, ["features", "build", "--json"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1  # exactly one JSON object on stdout; progress went to stderr
    out = json.loads(lines[0])
    assert out["users"] == 4 and [r["user_id"] for r in out["rejected"]] == ["podcaster"]
    help_text = CliRunner().invoke(app, ["features", "build", "--help"]).output
    assert "--force" in help_text and "--json" in help_text


class ExplodingModel:
    """Stands for the encoder model where a test asserts it is never used."""

    from soundmates.features.encoder import DEFAULT_MODEL_ID as model_id

    def encode(self, texts, **kw):
        raise AssertionError(f"the model was asked to encode {texts[:3]}")

    def get_sentence_embedding_dimension(self):
        raise AssertionError("the model was loaded to learn its dimension")


def test_empty_build_never_loads_the_model(settings):
    from soundmates.features.encoder import TextEncoder
    from soundmates.pipelines.features import build_features

    out = build_features(settings, encoder=TextEncoder(settings, model=ExplodingModel()))
    assert out["users"] == 0 and out["rejected"] == [] and out["data_version"] is None


def test_cached_builds_never_touch_the_model(settings, world, encoder):
    from soundmates.features.encoder import TextEncoder
    from soundmates.pipelines.features import build_features

    nobody = build_features(settings, user_ids=[], encoder=TextEncoder(settings, model=ExplodingModel()))
    assert nobody["users"] == 0 and nobody["updated"] == 0

    build_features(settings, encoder=encoder)
    # A new user whose genres and artist names ("Band indie rock", ...) are all in the persistent cache.
    world.save(make_profile("eve", (0, 1)))
    out = build_features(settings, encoder=TextEncoder(settings, model=ExplodingModel()))
    assert out["updated"] == 1 and out["unchanged"] == 4 and out["encoder"]["disk_hits"] > 0


def test_unchanged_rerun_skips_by_file_fingerprint_without_loading_profiles(settings, world, encoder, monkeypatch):
    from soundmates.pipelines.features import build_features
    from soundmates.profiles import ProfileRepository

    first = build_features(settings, encoder=encoder, batch_users=2)  # 4 users in 2 batches
    assert first["updated"] == 4 and [r["user_id"] for r in first["rejected"]] == ["podcaster"]
    loaded: list[str] = []
    real_load = ProfileRepository.load_record  # what the features stage reads a profile with

    def counting_load(self, user_id):
        loaded.append(user_id)
        return real_load(self, user_id)

    monkeypatch.setattr(ProfileRepository, "load_record", counting_load)
    monkeypatch.setattr(ProfileRepository, "load", lambda self, uid: pytest.fail(f"{uid}: read with pydantic, not msgspec"))
    again = build_features(settings, encoder=encoder)
    assert loaded == [] and again["updated"] == 0 and again["unchanged"] == 4
    assert again["data_version"] == first["data_version"]
    assert [r["user_id"] for r in again["rejected"]] == ["podcaster"]  # remembered, same reason
    assert again["rejected"][0]["reason"] == first["rejected"][0]["reason"]

    world.save(make_profile("bo", (4, 5), n_tracks=10, year0=1960))  # a new file: loaded and recomputed
    third = build_features(settings, encoder=encoder)
    assert loaded == ["bo"] and third["updated"] == 1 and third["unchanged"] == 3

    # The store lost a user's rows (e.g. removed): the fingerprint alone does not skip it.
    from soundmates.store import get_store

    get_store(settings).delete(S.USER_PROFILES, ["ana"])
    loaded.clear()
    fourth = build_features(settings, encoder=encoder)
    assert loaded == ["ana"] and fourth["updated"] == 1


def test_an_incremental_build_reads_one_batch_of_profiles_at_a_time(settings, world, encoder, monkeypatch):
    """Memory stays one batch deep: a batch is stored before the next batch's profiles are read (99,000 new
    users read at once took 23 GB)."""
    from soundmates.pipelines.features import build_features
    from soundmates.profiles import ProfileRepository
    from soundmates.store.delta import DeltaFeatureStore

    build_features(settings, encoder=encoder)  # the scaler exists: what follows is incremental
    for i in range(7):
        world.save(make_profile(f"new{i}", (i % 3 * 2, i % 3 * 2 + 1)))
    events: list[str] = []
    real_load, real_upsert = ProfileRepository.load_record, DeltaFeatureStore.upsert_arrow

    def load(self, user_id):
        events.append("read")
        return real_load(self, user_id)

    def upsert(self, group, table, *args, **kwargs):
        if group == S.USER_FEATURES:
            events.append("store")
        return real_upsert(self, group, table, *args, **kwargs)

    monkeypatch.setattr(ProfileRepository, "load_record", load)
    monkeypatch.setattr(DeltaFeatureStore, "upsert_arrow", upsert)
    out = build_features(settings, encoder=encoder, batch_users=3)
    assert out["updated"] == 7 and out["unchanged"] == 4
    reads_between = "".join("r" if e == "read" else "|" for e in events).split("|")
    assert events[-1] == "store" and [len(r) for r in reads_between[:-1]] == [3, 3, 1], events


def test_a_refit_reads_in_batches_stores_once_and_equals_one_batch(settings, world, encoder, tmp_path, monkeypatch):
    """A refit (no scaler yet) also reads one batch of profiles at a time, writes everyone in one commit at
    the end (no row before its scaler), and stores exactly what a single batch would."""
    from soundmates.pipelines.features import build_features
    from soundmates.store import get_store
    from soundmates.store.delta import DeltaFeatureStore

    for i in range(5):
        world.save(make_profile(f"new{i}", (i % 3 * 2, i % 3 * 2 + 1), n_tracks=8 + i))
    other = settings.model_copy(update={"data_dir": tmp_path / "one-batch"})
    for uid in world.user_ids():
        ProfileRepository(other.profiles_dir).save(world.load(uid))
    whole = build_features(other, encoder=encoder)

    events: list[str] = []
    real_load, real_upsert = ProfileRepository.load_record, DeltaFeatureStore.upsert_arrow
    monkeypatch.setattr(ProfileRepository, "load_record", lambda self, uid: events.append("r") or real_load(self, uid))

    def upsert(self, group, table, *args, **kwargs):
        events.append("F" if group == S.USER_FEATURES else "P")
        return real_upsert(self, group, table, *args, **kwargs)

    monkeypatch.setattr(DeltaFeatureStore, "upsert_arrow", upsert)
    import soundmates.features.taste as taste

    sizes, real_featurize = [], taste.featurize_profiles
    monkeypatch.setattr(
        taste, "featurize_profiles", lambda part, *a, **kw: sizes.append(len(part)) or real_featurize(part, *a, **kw)
    )
    batched = build_features(settings, encoder=encoder, batch_users=3)
    assert sizes == [3, 3, 3, 1]  # one batch of profiles in memory at a time
    assert "".join(events) == "r" * 10 + "FP"  # every profile read, then one commit per group
    assert batched["refit_scaler"] and batched["updated"] == whole["updated"] == 9
    a, b = (get_store(s).read(S.USER_FEATURES).sort_values(["user_id", "view"]).reset_index(drop=True) for s in (settings, other))
    assert list(a["user_id"]) == list(b["user_id"]) and list(a["view"]) == list(b["view"])
    np.testing.assert_allclose(np.stack(a["combined"]), np.stack(b["combined"]), rtol=1e-6, atol=1e-6)
    assert batched["scaler_version"] is not None
