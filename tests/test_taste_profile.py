"""`soundmates profile REF --json`: your genres, artists, eras, mainstream and variety against everyone, who is near."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def test_profile_json_against_the_stored_population(dashboard_world):
    from soundmates.cli.main import app
    from soundmates.config import get_settings
    from soundmates.index import UserIndex
    from soundmates.pipelines.taste_map import build_map
    from soundmates.profiles import ProfileRepository

    build_map(get_settings(), progress=False)
    me = dashboard_world.stored_ids[0]
    out = CliRunner().invoke(app, ["profile", me, "--within", "0.3", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["user_id"] == me and got["warnings"] == []
    assert 1 <= len(got["top_genres"]) <= 10 and 1 <= len(got["top_artists"]) <= 10
    shares = [g["share"] for g in got["top_genres"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0001
    assert math.isclose(sum(e["share"] for e in got["eras"]), 1.0, abs_tol=0.01)

    # The top artist is the one with most track appearances in the profile itself.
    prof = ProfileRepository(get_settings().profiles_dir).load(me)
    counts: dict[str, float] = {}
    for pl in prof.playlists:
        for item in pl.items:
            for a in prof.tracks[item.track_id].artist_ids if item.track_id in prof.tracks else []:
                counts[a] = counts.get(a, 0.0) + item.weight
    assert counts[got["top_artists"][0]["id"]] == pytest.approx(max(counts.values()))

    n = len(dashboard_world.stored_ids)
    for part in ("mainstream", "variety"):
        p = got[part]
        assert p["users_compared"] == n and 0 <= p["percentile"] <= 100 and p["value"] is not None
    # People within the score: the served vectors, counted independently here.
    ids, vecs = UserIndex(get_settings()).all_vectors()
    mine = vecs[ids.index(me)]
    expected = int(sum(1 for u, v in zip(ids, vecs) if u != me and float(np.dot(mine, v)) >= 0.3))
    assert (got["people_within"], got["people_compared"]) == (expected, n - 1)
    wider = json.loads(CliRunner().invoke(app, ["profile", me, "--within", "-1", "--json"]).stdout)
    assert wider["people_within"] == n - 1


def test_profile_without_a_map_still_answers_and_says_why_no_comparison(dashboard_world):
    from soundmates.cli.main import app

    out = CliRunner().invoke(app, ["profile", dashboard_world.stored_ids[1], "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["mainstream"]["percentile"] is None and any("soundmates map build" in w for w in got["warnings"])


def test_profile_of_a_bad_reference_is_one_line(dashboard_world):
    from soundmates.cli.main import app

    out = CliRunner().invoke(app, ["profile", "spotify:track:nope"])
    assert out.exit_code == 1 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
