"""Feature values pinned: a fixed tiny world (tests/helpers/features_golden.py) reproduces tests/data/features_golden.json.

The golden file was written by the features code before it was vectorised; any rewrite of
``taste_bags`` / ``features_from_bags`` / ``featurize_profiles`` / ``build_features`` must give
the same rows: exact for ints, strings and lists of names, ``np.allclose(rtol=1e-6)`` for floats.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.features_golden import GOLDEN_PATH, assert_matches, golden_profiles, snapshot


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))


def test_the_golden_world_covers_the_edge_cases(golden):
    build = golden["build"]
    assert build["updated"] >= 15 and len(build["rejected"]) == 4 and build["without_views"] == 3
    missing = {m for r in build["user_features"] for m in r["missing"]}
    assert missing == {"genres", "artists", "release_year", "popularity", "explicit"}
    assert len(golden_profiles()) == len({r["user_id"] for r in build["user_features"]}) + len(build["rejected"])


def test_features_reproduce_the_golden_file(settings, golden):
    actual = json.loads(json.dumps(snapshot(settings), ensure_ascii=False, sort_keys=True))
    assert_matches(actual["featurize"], golden["featurize"], "featurize")
    assert_matches(actual["build"], golden["build"], "build")


def test_the_comparison_is_not_blind(golden):
    rows = golden["build"]["user_features"]
    changed = json.loads(json.dumps(golden["build"]))
    changed["user_features"][0]["combined"][3] += 1e-4
    with pytest.raises(AssertionError, match="combined"):
        assert_matches(changed, golden["build"], "build")
    i = next(i for i, r in enumerate(rows) if len(set(r["genre_names"])) >= 2)
    changed = json.loads(json.dumps(golden["build"]))
    changed["user_features"][i]["genre_names"] = list(reversed(rows[i]["genre_names"]))
    with pytest.raises(AssertionError, match="genre_names"):
        assert_matches(changed, golden["build"], "build")


def test_the_batch_path_equals_the_user_by_user_path(settings):
    """featurize_profiles (all users at once) gives, row for row, what taste_bags + split_views +
    features_from_bags + explanation_row give one user at a time (the reference the hand-computed
    tests in test_features.py check)."""
    import math

    import numpy as np

    from soundmates.features.encoder import TextEncoder
    from soundmates.features.taste import Rejected, explanation_row, features_from_bags, featurize_profiles, taste_bags
    from soundmates.features.views import split_views
    from tests.helpers.encoders import HashModel

    enc = TextEncoder(settings, model=HashModel(8))
    profiles = golden_profiles()
    batch = featurize_profiles(profiles, enc, top_n=3, views=True, seed=5)
    got = {(r["user_id"], r["view"]): r for r in batch.feature_rows}
    explained = {r["user_id"]: r for r in batch.profile_rows}
    for prof in profiles:
        try:
            full = features_from_bags(taste_bags(prof), prof, enc.encode, 8, 3)
        except Rejected:
            assert (prof.user_id, "full") not in got
            continue
        want = {"full": full}
        halves = split_views(prof, seed=5)
        try:
            if halves is not None:
                ph = full["profile_hash"]  # the halves carry the whole profile's hash
                want |= {v: features_from_bags(taste_bags(h), h, enc.encode, 8, 3, ph) for v, h in zip(("a", "b"), halves)}
        except Rejected:
            want = {"full": full}
        assert {v for (u, v) in got if u == prof.user_id} == set(want)
        for view, row in want.items():
            mine = got[(prof.user_id, view)]
            for k, v in row.items():
                if isinstance(v, np.ndarray):
                    assert np.allclose(mine[k], v, rtol=1e-6, equal_nan=True), (prof.user_id, view, k)
                elif isinstance(v, float):
                    assert (math.isnan(v) and math.isnan(mine[k])) or math.isclose(mine[k], v, rel_tol=1e-9), (k, v)
                else:
                    assert mine[k] == v, (prof.user_id, view, k)
        ref = explanation_row(taste_bags(prof), prof)
        assert {k: v for k, v in explained[prof.user_id].items() if k != "updated_at"} == {
            k: v for k, v in ref.items() if k != "updated_at"
        }


def test_odd_numbers_give_what_the_user_by_user_path_gives(settings):
    """A release year too large for a float is an unknown year; a popularity that large rejects that user only."""
    from soundmates.features.encoder import TextEncoder
    from soundmates.features.taste import featurize_profiles, taste_bags
    from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track
    from tests.helpers.encoders import HashModel

    def prof(uid, **track):
        t = Track(id="t", name="T", artist_ids=["a"], **track)
        pl = Playlist(id="p", name="p", items=[PlaylistItem(track_id="t"), PlaylistItem(track_id="t")])
        return Profile(user_id=uid, playlists=[pl], tracks={"t": t}, artists={"a": Artist(id="a", name="A", genres=["x"])})

    huge = 10**400
    batch = featurize_profiles(
        [prof("y", release_year=huge), prof("p", popularity=huge)], TextEncoder(settings, model=HashModel(8))
    )
    full = {r["user_id"]: r for r in batch.feature_rows if r["view"] == "full"}
    assert set(full) == {"y"} and "release_year" in full["y"]["missing"] and not taste_bags(prof("y", release_year=huge)).years
    assert [r["user_id"] for r in batch.rejected] == ["p"] and batch.rejected[0]["reason"].startswith(
        "could not read the profile"
    )
