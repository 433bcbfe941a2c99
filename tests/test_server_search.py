"""``GET /v1/search`` of the local Spotify server: paging, parameter checks and error bodies as the OpenAPI spec says."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator

from soundmates.world.catalog import artists

SPEC = Path(__file__).resolve().parent / "data" / "openapi.yml"


@pytest.fixture(scope="module")
def spec_validator():
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPEC, encoding="utf-8") as f:
        comps = yaml.load(f, Loader=loader)["components"]

    def validate(response: str, status: str, instance) -> None:
        schema = comps["responses"][response]["content"]["application/json"]["schema"]
        v = OAS30Validator({**schema, "components": comps}, format_checker=FormatChecker())
        errors = list(v.iter_errors(instance))
        assert not errors, f"{response}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return validate


def _session(server) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = (
        "Bearer "
        + requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("a", "b"), timeout=10).json()[
            "access_token"
        ]
    )
    return s


def test_the_validator_catches_a_wrong_search_shape(spec_validator):
    with pytest.raises(AssertionError):
        spec_validator("SearchItems", "200", {"artists": {"href": "x", "items": [{"id": 5}]}})


@pytest.mark.parametrize("mode", ["full", "development"])
def test_artist_search_answers_the_spec_paging_object(spotify_server, spec_validator, mode):
    server = spotify_server(mode=mode)
    s = _session(server)
    body = s.get(f"{server.api_url}search", params={"q": "love", "type": "artist", "limit": 3, "offset": 2}, timeout=10).json()
    spec_validator("SearchItems", "200", body)
    page = body["artists"]
    assert set(page) == {"href", "items", "limit", "next", "offset", "previous", "total"}
    assert page["limit"] == 3 and page["offset"] == 2 and len(page["items"]) == 3 and page["total"] > 5
    assert all("love" in a["name"].casefold() for a in page["items"])
    nxt = s.get(page["next"], timeout=10).json()["artists"]
    assert nxt["offset"] == 5 and {a["id"] for a in nxt["items"]}.isdisjoint(a["id"] for a in page["items"])
    prev = s.get(page["previous"], timeout=10).json()["artists"]
    assert prev["offset"] == 0 and prev["previous"] is None


def test_an_exact_name_comes_first_and_a_missing_one_finds_nothing(spotify_server, spec_validator):
    server = spotify_server()
    s = _session(server)
    names = artists().names
    name = next(n for n in names if n.isascii() and n.isalpha() and len(n) > 6)
    body = s.get(f"{server.api_url}search", params={"q": name.lower(), "type": "artist"}, timeout=10).json()
    assert body["artists"]["items"][0]["name"] == name and body["artists"]["limit"] == 5  # the spec's default
    empty = s.get(f"{server.api_url}search", params={"q": "zzqx nobody plays this", "type": "artist"}, timeout=10).json()
    spec_validator("SearchItems", "200", empty)
    assert empty["artists"]["items"] == [] and empty["artists"]["total"] == 0 and empty["artists"]["next"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "artist"}, "No search query"),
        ({"q": "  ", "type": "artist"}, "No search query"),
        ({"q": "love"}, "Missing parameter type"),
        ({"q": "love", "type": "artist,singer"}, "Bad search type field"),
        ({"q": "love", "type": "artist", "limit": "0"}, "Invalid limit"),
        ({"q": "love", "type": "artist", "limit": "11"}, "Invalid limit"),
        ({"q": "love", "type": "artist", "limit": "five"}, "Invalid limit"),
        ({"q": "love", "type": "artist", "offset": "-1"}, "Invalid offset"),
        ({"q": "love", "type": "artist", "offset": "1001"}, "Invalid offset"),
    ],
)
def test_bad_parameters_get_the_spec_error_body(spotify_server, spec_validator, params, message):
    server = spotify_server()
    r = _session(server).get(f"{server.api_url}search", params=params, timeout=10)
    assert r.status_code == 400
    spec_validator("BadRequest", "400", r.json())
    assert r.json() == {"error": {"status": 400, "message": message}}


def test_search_needs_a_token(spotify_server, spec_validator):
    server = spotify_server()
    r = requests.get(f"{server.api_url}search", params={"q": "love", "type": "artist"}, timeout=10)
    assert r.status_code == 401
    spec_validator("Unauthorized", "401", r.json())
    assert server.stats()["requests"]["search"] == 1
