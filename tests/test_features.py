"""Taste features from hand-built profiles: each feature's value checked against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from soundmates.features import schema as S
from soundmates.features.encoder import TextEncoder
from soundmates.features.scaler import CombinedScaler, ScalerError, load_scaler
from soundmates.features.taste import Rejected, features_from_bags, featurize_profiles, taste_bags
from soundmates.features.views import split_views
from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track


def E(encoder, *texts) -> np.ndarray:
    return encoder.encode(list(texts)).astype(np.float64)


def track(tid, artists, year=2000, pop=50, explicit=False):
    return Track(id=tid, name=f"Song {tid}", artist_ids=artists, release_year=year, popularity=pop, explicit=explicit)


def profile(user_id, playlists, tracks, artists, **kw):
    pls = [
        # added_at names each row's position, so tests can tell two rows of the same track apart.
        Playlist(
            id=pid,
            name=pid,
            items=[PlaylistItem(track_id=t, weight=w, added_at=f"{pid}#{i}") for i, (t, w) in enumerate(items)],
            **extra,
        )
        for pid, items, extra in playlists
    ]
    return Profile(
        user_id=user_id,
        display_name=kw.pop("display_name", user_id.title()),
        playlists=pls,
        tracks={t.id: t for t in tracks},
        artists={a.id: a for a in artists},
        **kw,
    )


def one_row(prof, encoder, top_n=10):
    b = taste_bags(prof)
    return features_from_bags(b, prof, encoder.encode, encoder.dim, top_n)


# --- genre, artist, playlist embeddings ------------------------------------------


def test_playlist_embedding_weighted_by_playlist_size(encoder):
    arts = [Artist(id="x", name="Miles Davis", genres=["jazz"]), Artist(id="y", name="Metallica", genres=["metal", "rock"])]
    tracks = [track(f"j{i}", ["x"]) for i in range(10)] + [track(f"m{i}", ["y"]) for i in range(30)]
    prof = profile(
        "u",
        [("small", [(f"j{i}", 1.0) for i in range(10)], {}), ("big", [(f"m{i}", 1.0) for i in range(30)], {})],
        tracks,
        arts,
    )
    row = one_row(prof, encoder)
    jazz, metal, rock = E(encoder, "jazz", "metal", "rock")
    expected_playlist = (10 * jazz + 30 * (metal + rock) / 2) / 40
    np.testing.assert_allclose(row["playlist_emb"], expected_playlist, atol=1e-5)
    # The genre embedding weights each genre by occurrence instead: jazz 10, metal 30, rock 30.
    expected_genre = (10 * jazz + 30 * metal + 30 * rock) / 70
    np.testing.assert_allclose(row["genre_emb"], expected_genre, atol=1e-5)
    assert not np.allclose(row["genre_emb"], row["playlist_emb"], atol=1e-3)
    assert row["n_tracks"] == 40 and row["n_playlists"] == 2


def test_genre_weights_count_track_artist_occurrences_times_item_weight(encoder):
    arts = [Artist(id="a", name="Adele", genres=["pop"]), Artist(id="b", name="Bill Withers", genres=["pop", "soul"])]
    tracks = [track("duet", ["a", "b"]), track("solo", ["b"])]
    # The duet played with weight 2 (e.g. minutes), the solo once.
    prof = profile("u", [("p", [("duet", 2.0), ("solo", 1.0)], {})], tracks, arts)
    row = one_row(prof, encoder)
    # pop: duet 2 x (a + b) = 4, solo 1 x b = 1 -> 5 ; soul: duet 2 x b = 2, solo 1 -> 3
    assert row["genre_names"] == ["pop", "soul"]
    np.testing.assert_allclose(row["genre_weights"], [5.0, 3.0])
    pop, soul = E(encoder, "pop", "soul")
    np.testing.assert_allclose(row["genre_emb"], (5 * pop + 3 * soul) / 8, atol=1e-5)
    # artist bag: a 2, b 3 (duet 2 + solo 1), sorted by weight
    assert row["artist_ids"] == ["b", "a"]
    np.testing.assert_allclose(row["artist_weights"], [3.0, 2.0])


def test_artist_embedding_is_mean_of_top_n_artist_names(encoder):
    names = {"a1": "Björk", "a2": "Portishead", "a3": "Massive Attack", "a4": "Tricky"}
    arts = [Artist(id=k, name=v, genres=["trip hop"]) for k, v in names.items()]
    # occurrences: a3 x3, a1 x2, a2 x2, a4 x1 -> top 2 = a3 then a1 (tie with a2 broken by id)
    plays = ["a3", "a3", "a3", "a1", "a1", "a2", "a2", "a4"]
    tracks = [track(f"t{i}", [a]) for i, a in enumerate(plays)]
    prof = profile("u", [("p", [(t.id, 1.0) for t in tracks], {})], tracks, arts)
    row = one_row(prof, encoder, top_n=2)
    np.testing.assert_allclose(row["artist_emb"], E(encoder, "Massive Attack", "Björk").mean(axis=0), atol=1e-5)
    assert row["artist_ids"] == ["a3", "a1", "a2", "a4"]  # the raw bag keeps every artist
    row4 = one_row(prof, encoder, top_n=10)
    np.testing.assert_allclose(row4["artist_emb"], E(encoder, *names.values()).mean(axis=0), atol=1e-5)


# --- years, popularity, explicit -------------------------------------------------------


def test_year_stats_and_histogram_with_known_unknown_and_invalid_years(encoder):
    arts = [Artist(id="a", name="A", genres=["rock"])]
    # 1965 (1960s), 1999 (1990s), 2021 (2020s+), 1955 (<1960) known; None unknown; 0 is a data error.
    years = [1965, 1999, 2021, 1955, None, 0]
    tracks = [track(f"t{i}", ["a"], year=y) for i, y in enumerate(years)]
    prof = profile("u", [("p", [(t.id, 1.0) for t in tracks], {})], tracks, arts)
    row = one_row(prof, encoder)
    known = np.array([1965, 1999, 2021, 1955], dtype=float)
    assert row["year_mean"] == pytest.approx(known.mean())
    assert row["year_std"] == pytest.approx(known.std())
    hist = dict(zip(S.YEAR_BINS, row["year_hist"]))
    assert hist["<1960"] == pytest.approx(0.25) and hist["1960s"] == pytest.approx(0.25)
    assert hist["1990s"] == pytest.approx(0.25) and hist["2020s+"] == pytest.approx(0.25)
    assert sum(row["year_hist"]) == pytest.approx(1.0)
    assert S.MISSING_YEARS not in row["missing"]

    no_years = profile("v", [("p", [("t4", 1.0), ("t5", 1.0)], {})], tracks, arts)
    row = one_row(no_years, encoder)
    assert math.isnan(row["year_mean"]) and math.isnan(row["year_std"])
    assert list(row["year_hist"]) == [0.0] * len(S.YEAR_BINS)
    assert S.MISSING_YEARS in row["missing"]


def test_popularity_missing_is_nan_and_recorded(encoder):
    arts = [Artist(id="a", name="A", genres=["rock"])]
    tracks = [
        track("t1", ["a"], pop=None, explicit=True),
        track("t2", ["a"], pop=None, explicit=False),
        track("t3", ["a"], pop=None, explicit=None),
    ]
    prof = profile("u", [("p", [("t1", 1.0), ("t2", 1.0), ("t3", 1.0)], {})], tracks, arts)
    row = one_row(prof, encoder)
    assert math.isnan(row["mean_popularity"]) and S.MISSING_POPULARITY in row["missing"]
    assert row["explicit_ratio"] == pytest.approx(0.5)  # the unknown one is left out, not counted as clean
    assert S.MISSING_EXPLICIT not in row["missing"]

    with_pop = profile("v", [("p", [("t1", 3.0)], {})], [track("t1", ["a"], pop=80)], arts)
    assert one_row(with_pop, encoder)["mean_popularity"] == pytest.approx(80.0)


# --- missing data and rejection ----------------------------------------------------------


def test_no_genres_development_mode_still_has_features(encoder):
    arts = [Artist(id="a", name="Nina Simone", genres=None), Artist(id="b", name="Aretha Franklin", genres=[])]
    tracks = [track("t1", ["a"]), track("t2", ["b"])]
    prof = profile("u", [("p", [("t1", 1.0), ("t2", 1.0)], {})], tracks, arts)
    row = one_row(prof, encoder)
    assert S.MISSING_GENRES in row["missing"]
    assert not row["genre_emb"].any() and not row["playlist_emb"].any()
    np.testing.assert_allclose(row["artist_emb"], E(encoder, "Aretha Franklin", "Nina Simone").mean(axis=0), atol=1e-5)
    # In the unscaled combined vector a missing embedding is NaN, so the scaler fills in the fitted mean.
    genre_slice = dict((n, (a, b)) for n, a, b in S.combined_layout(encoder.dim))["genre_emb"]
    assert np.isnan(row["combined"][slice(*genre_slice)]).all()


def test_all_episodes_user_rejected_with_reason_and_batch_continues(encoder):
    good = profile(
        "good",
        [("p", [("t1", 1.0), ("t2", 1.0)], {})],
        [track("t1", ["a"]), track("t2", ["a"])],
        [Artist(id="a", name="A", genres=["rock"])],
    )
    podcasts = profile(
        "pods", [("show", [], {"skipped_episodes": 12}), ("more", [], {"skipped_episodes": 3, "skipped_local": 1})], [], []
    )
    nothing = profile("empty", [], [], [])
    dangling = profile("dangling", [("p", [("gone", 1.0)], {})], [], [])
    batch = featurize_profiles([podcasts, good, nothing, dangling], encoder)
    reasons = {r["user_id"]: r["reason"] for r in batch.rejected}
    assert set(reasons) == {"pods", "empty", "dangling"}
    assert "episodes=15" in reasons["pods"] and "local=1" in reasons["pods"] and "2 playlist" in reasons["pods"]
    assert "no playlists" in reasons["empty"]
    assert "unknown_track=1" in reasons["dangling"]
    assert {r["user_id"] for r in batch.feature_rows} == {"good"}
    with pytest.raises(Rejected, match="no music tracks"):
        one_row(podcasts, encoder)


# --- views ----------------------------------------------------------------------------------


def _items(p: Profile) -> list[tuple[str, str, str]]:
    return [(pl.id, it.added_at, it.track_id) for pl in p.playlists for it in pl.items]


def test_views_split_playlists_disjoint_covering_balanced_and_deterministic():
    sizes = {"p1": 12, "p2": 9, "p3": 7, "p4": 5, "p5": 3}
    tracks = [track(f"{p}-{i}", ["a"]) for p, n in sizes.items() for i in range(n)]
    prof = profile(
        "u", [(p, [(f"{p}-{i}", 1.0) for i in range(n)], {}) for p, n in sizes.items()], tracks, [Artist(id="a", name="A")]
    )
    a, b = split_views(prof, seed=7)
    ids_a, ids_b = {pl.id for pl in a.playlists}, {pl.id for pl in b.playlists}
    assert not ids_a & ids_b and ids_a | ids_b == set(sizes)  # whole playlists, disjoint, covering
    assert abs(a.n_items - b.n_items) <= 3  # 36 items: greedy largest-first gives 18/18 or close
    again = split_views(prof, seed=7)
    assert [pl.id for pl in again[0].playlists] == [pl.id for pl in a.playlists]


def test_views_single_playlist_splits_tracks():
    tracks = [track(f"t{i}", ["a"]) for i in range(11)]
    prof = profile(
        "u",
        [("only", [(f"t{i}", 1.0) for i in range(11)] + [("t0", 1.0)], {"skipped_episodes": 2})],
        tracks,
        [Artist(id="a", name="A")],
    )
    a, b = split_views(prof, seed=0)
    ia, ib = _items(a), _items(b)
    assert not set(ia) & set(ib)
    assert sorted(ia + ib) == sorted(_items(prof))
    assert abs(len(ia) - len(ib)) <= 1
    assert sum(pl.skipped_episodes for pl in a.playlists + b.playlists) == 2
    # Too little to split: one usable item.
    tiny = profile("t", [("p", [("t1", 1.0)], {})], tracks, [Artist(id="a", name="A")])
    assert split_views(tiny) is None


def test_batch_rows_full_a_b_match_the_store_schema(encoder):
    arts = [Artist(id="a", name="Daft Punk", genres=["french house"]), Artist(id="b", name="Justice", genres=["electro"])]
    tracks = [track(f"t{i}", ["a" if i < 6 else "b"], year=1995 + i) for i in range(12)]
    prof = profile(
        "u", [("p1", [(f"t{i}", 1.0) for i in range(6)], {}), ("p2", [(f"t{i}", 1.0) for i in range(6, 12)], {})], tracks, arts
    )
    batch = featurize_profiles([prof], encoder, top_n=5)
    rows = {r["view"]: r for r in batch.feature_rows}
    assert set(rows) == set(S.VIEWS)
    assert rows["a"]["n_tracks"] + rows["b"]["n_tracks"] == rows["full"]["n_tracks"] == 12
    assert set(rows["a"]["genre_names"]).isdisjoint(rows["b"]["genre_names"])  # p1 is all French house, p2 electro
    assert rows["a"]["profile_hash"] == rows["b"]["profile_hash"] == prof.content_hash()
    from soundmates.pipelines.features import _feature_frame, _profile_frame

    ft = pa.Table.from_pandas(_feature_frame(batch.feature_rows), schema=S.USER_FEATURES_SCHEMA, preserve_index=False)
    assert ft.num_rows == 3 and len(ft.column("combined")[0]) == S.combined_dim(encoder.dim)
    pt = pa.Table.from_pandas(_profile_frame(batch.profile_rows), schema=S.USER_PROFILES_SCHEMA, preserve_index=False)
    import json

    meta = pt.to_pylist()[0]
    assert [g["genre"] for g in json.loads(meta["top_genres_json"])] == ["electro", "french house"]
    assert json.loads(meta["top_artists_json"])[0] == {"id": "a", "name": "Daft Punk", "count": 6.0}
    assert json.loads(meta["year_hist_json"])["bins"] == list(S.YEAR_BINS)


def test_no_per_user_model_calls_when_cached(tmp_path, settings):
    from tests.helpers.encoders import CountingModel, HashModel

    model = CountingModel(HashModel())
    enc = TextEncoder(settings, cache_dir=tmp_path, model=model)
    arts = [Artist(id=f"a{i}", name=f"Artist {i}", genres=[f"g{i % 3}", "shared"]) for i in range(6)]
    profs = [
        profile(
            f"u{u}",
            [("p", [(f"t{i}", 1.0) for i in range(6)], {})],
            [track(f"t{i}", [f"a{(i + u) % 6}"]) for i in range(6)],
            arts,
        )
        for u in range(5)
    ]
    featurize_profiles(profs, enc)
    assert enc.stats["model_calls"] == 1  # one call for the whole batch
    assert sorted(model.seen) == sorted({"g0", "g1", "g2", "shared", *(a.name for a in arts)})
    featurize_profiles(profs, enc)
    assert enc.stats["model_calls"] == 1


# --- scaler ------------------------------------------------------------------------------


def test_scaler_fit_persist_reload_and_nan_becomes_mean(settings):
    x = np.array([[1.0, 10.0, np.nan], [3.0, 30.0, 5.0], [5.0, np.nan, 7.0]])
    sc = CombinedScaler.fit(x, user_ids=["a", "b", "c"], profile_hashes=["h1", "h2", "h3"], encoder_model="m", encoder_dim=1)
    np.testing.assert_allclose(sc.mean, [3.0, 20.0, 6.0])
    np.testing.assert_allclose(sc.scale, [np.std([1, 3, 5]), 10.0, 1.0])
    out = sc.transform(x)
    assert out[0, 2] == 0 and out[2, 1] == 0  # NaN -> the fitted mean -> 0
    assert out[1, 0] == pytest.approx(0.0) and out[2, 0] == pytest.approx(2 / np.std([1, 3, 5]), rel=1e-6)

    assert load_scaler(settings) is None
    sc.save(settings)
    again = load_scaler(settings)
    assert again.version == 1 and again.fitted_on["n_users"] == 3
    np.testing.assert_allclose(again.transform(x), out)
    sc2 = CombinedScaler.fit(x[:2], user_ids=["a", "b"], profile_hashes=["h1", "h2"], encoder_model="m", encoder_dim=1)
    sc2.save(settings)
    assert load_scaler(settings).version == 2
    assert (settings.data_dir / "features" / "scaler-v1.json").exists()  # the older fit is kept
    with pytest.raises(ScalerError, match="fitted on 3"):
        sc.transform(np.zeros((1, 4)))
    (settings.data_dir / "features" / "scaler.json").write_text("{not json")
    with pytest.raises(ScalerError, match="not a valid scaler"):
        load_scaler(settings)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scikit-learn warns on the all-NaN column
def test_scaler_fit_gives_exactly_what_sklearns_standard_scaler_gives():
    from sklearn.preprocessing import StandardScaler

    from soundmates.features.scaler import _standardise

    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(size=(300, 40)) * rng.uniform(0, 10, 40) + rng.uniform(-5, 5, 40)
        x[rng.random(x.shape) < 0.1] = np.nan
        x[:, 3], x[:, 4], x[:, 6] = 7.0, np.nan, 0.0  # constant, no value at all, zeros
        x[:10, 5], x[10:, 5] = np.nan, 1.0 / 3  # constant where known
        sk = StandardScaler().fit(x)
        mean, scale = _standardise(x)
        assert np.array_equal(mean, sk.mean_, equal_nan=True) and np.array_equal(scale, sk.scale_, equal_nan=True)
    with pytest.raises(ValueError, match="infinity"):
        _standardise(np.array([[1.0], [np.inf]]))


def test_unexpected_error_in_one_user_does_not_fail_the_batch(tmp_path, settings, monkeypatch):
    from soundmates.features import rows
    from tests.helpers.encoders import HashModel

    real = rows.feature_row

    def flaky(bt, b, *a, **kw):  # the batch path builds every user's rows here
        if bt.cols.profiles[b // 3].user_id == "bad":
            raise ZeroDivisionError("odd data")
        return real(bt, b, *a, **kw)

    monkeypatch.setattr(rows, "feature_row", flaky)
    arts = [Artist(id="a", name="A", genres=["rock"])]
    profs = [
        profile(u, [("p", [("t1", 1.0), ("t2", 1.0)], {})], [track("t1", ["a"]), track("t2", ["a"])], arts)
        for u in ("ok1", "bad", "ok2")
    ]
    batch = featurize_profiles(profs, TextEncoder(settings, cache_dir=tmp_path, model=HashModel()))
    assert batch.rejected == [{"user_id": "bad", "reason": "feature computation failed: ZeroDivisionError: odd data"}]
    assert {r["user_id"] for r in batch.feature_rows} == {"ok1", "ok2"}
