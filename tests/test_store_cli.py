"""``soundmates store show | inbox | optimize`` through the real CLI app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from soundmates.cli.main import app
from soundmates.store import get_store, inbox
from tests.helpers.profiles import profile_rows

runner = CliRunner()


def one_json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got {stdout!r}"
    return json.loads(lines[0])


def test_store_show_json_lists_groups_with_rows_and_versions():
    store = get_store()
    store.upsert("user_profiles", profile_rows("ann", "bob"))
    v = store.upsert("user_profiles", profile_rows("cat"))
    inbox.add_request(store, "dan", "spotify:user:dan")

    result = runner.invoke(app, ["store", "show", "--json"])
    assert result.exit_code == 0, result.output
    out = one_json(result.stdout)
    assert out["backend"] == "embedded"
    groups = {g["name"]: g for g in out["groups"]}
    assert groups["user_profiles"] == {
        "name": "user_profiles",
        "version": 1,
        "rows": 3,
        "data_version": v,
        "primary_key": ["user_id"],
    }
    assert "new_users_inbox" not in groups, "the inbox is a queue of its own, not a feature group"


def test_store_show_human_table_and_empty_store():
    result = runner.invoke(app, ["store", "show"])
    assert result.exit_code == 0 and "no feature groups yet" in result.stdout
    get_store().upsert("user_profiles", profile_rows("ann"))
    result = runner.invoke(app, ["store", "show"])
    assert result.exit_code == 0
    header, rule, row = result.stdout.splitlines()[1:4]
    assert header.split() == ["name", "version", "rows", "data_version", "primary_key"]
    assert row.split() == ["user_profiles", "1", "1", "0", "user_id"]


def test_store_show_with_hopsworks_unconfigured_fails_clearly(monkeypatch):
    from soundmates.config import reset_settings

    monkeypatch.setenv("SOUNDMATES_STORE_BACKEND", "hopsworks")
    monkeypatch.delenv("HOPSWORKS_API_KEY", raising=False)
    reset_settings()
    result = runner.invoke(app, ["store", "show", "--json"])
    assert result.exit_code == 1
    assert "HOPSWORKS_API_KEY is unset" in result.stderr
    assert "HOPSWORKS_API_KEY is unset" in one_json(result.stdout)["error"]
    human = runner.invoke(app, ["store", "show"])
    assert human.exit_code == 1 and human.stdout == "" and "HOPSWORKS_API_KEY" in human.stderr


def test_store_inbox_shows_counts_and_filters_by_status():
    store = get_store()
    inbox.add_request(store, "ann", "spotify:user:ann")
    inbox.add_request(store, "bob", "spotify:user:bob", source="cli")
    inbox.mark(store, "bob", "failed", reason="private profile")

    out = one_json(runner.invoke(app, ["store", "inbox", "--json"]).stdout)
    assert out["counts"] == {"pending": 1, "processing": 0, "done": 0, "failed": 1}
    failed = one_json(runner.invoke(app, ["store", "inbox", "--status", "failed", "--json"]).stdout)["entries"]
    assert [(e["user_id"], e["reason"], e["source"]) for e in failed] == [("bob", "private profile", "cli")]

    bad = runner.invoke(app, ["store", "inbox", "--status", "finished"])
    assert bad.exit_code == 2 and "pending, processing, done, failed" in bad.stderr


def test_store_optimize_compacts_and_keeps_time_travel():
    store = get_store()
    versions = [store.upsert("user_profiles", profile_rows(f"user{i}")) for i in range(4)]
    result = runner.invoke(app, ["store", "optimize", "user_profiles", "--json"])
    assert result.exit_code == 0, result.output
    out = one_json(result.stdout)
    assert out["files_removed_by_compaction"] == 4 and out["files_added_by_compaction"] == 1
    assert out["data_version"] > versions[-1]
    assert sorted(store.read("user_profiles", as_of=versions[1])["user_id"]) == ["user0", "user1"]
    assert len(store.read("user_profiles")) == 4

    unknown = runner.invoke(app, ["store", "optimize", "nope", "--json"])
    assert unknown.exit_code == 1 and "unknown feature group 'nope'" in unknown.stderr
    assert "nope" in one_json(unknown.stdout)["error"]


@pytest.mark.parametrize("command", [["store"], ["store", "show"], ["store", "inbox"], ["store", "optimize"]])
def test_every_store_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout
