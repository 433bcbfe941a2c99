"""The orchestration helpers: the inbox trigger and sensor, bootstrap params, credentials, task steps."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from soundmates.orchestration import bootstrap, steps
from soundmates.orchestration.bootstrap import BootstrapParamsError

# --- trigger and sensor ------------------------------------------------------------------------


@pytest.fixture
def store():
    from soundmates.store import get_store

    return get_store()


def _first_event(trigger, timeout_s: float):
    async def first():
        agen = trigger.run()
        try:
            return await asyncio.wait_for(agen.__anext__(), timeout_s)
        finally:
            await agen.aclose()

    return asyncio.run(first())


def _trigger(settings, **kw):
    from soundmates.orchestration.triggers import InboxPendingTrigger

    return InboxPendingTrigger(poll_interval_s=0.05, data_dir=str(settings.data_dir), **kw)


def test_trigger_does_not_fire_without_pending_request(settings, store):
    from soundmates.store import inbox

    trigger = _trigger(settings)
    with pytest.raises(asyncio.TimeoutError):
        _first_event(trigger, 0.6)  # empty inbox (never written)
    inbox.add_request(store, "alice", "spotify:user:alice", source="test")
    inbox.mark(store, "alice", inbox.DONE)
    with pytest.raises(asyncio.TimeoutError):
        _first_event(trigger, 0.6)  # only a done request


def test_trigger_fires_on_new_inbox_row(settings, store):
    from soundmates.store import inbox

    trigger = _trigger(settings)
    adder = threading.Timer(0.4, lambda: inbox.add_request(store, "bob.smith", "spotify:user:bob.smith", source="test"))
    started = time.monotonic()
    adder.start()
    try:
        event = _first_event(trigger, 20)
    finally:
        adder.join()
    assert event.payload["pending"] == 1
    assert event.payload["data_dir"] == str(settings.data_dir)
    assert time.monotonic() - started >= 0.4  # it waited for the row, it did not fire early


def test_trigger_min_pending_and_serialization(settings, store):
    from airflow.triggers.base import BaseEventTrigger
    from airflow.utils.module_loading import import_string

    from soundmates.store import inbox

    trigger = _trigger(settings, min_pending=2)
    inbox.add_request(store, "u1", "spotify:user:u1", source="test")
    with pytest.raises(asyncio.TimeoutError):
        _first_event(trigger, 0.5)
    inbox.add_request(store, "u2", "spotify:user:u2", source="test")
    assert _first_event(trigger, 10).payload["pending"] == 2

    # The triggerer rebuilds the trigger from serialize(): the class path must import from the package.
    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**kwargs)
    assert isinstance(rebuilt, BaseEventTrigger)  # usable in an AssetWatcher too
    assert rebuilt.serialize() == (classpath, kwargs)
    json.dumps(kwargs)
    with pytest.raises(ValueError, match="min_pending"):
        import_string(classpath)(min_pending=0)


def test_sensor_defers_when_empty_and_returns_when_pending(settings, store):
    from airflow.exceptions import TaskDeferred

    from soundmates.orchestration.sensors import NewUsersSensor
    from soundmates.orchestration.triggers import InboxPendingTrigger
    from soundmates.store import inbox

    sensor = NewUsersSensor(task_id="wait", data_dir=str(settings.data_dir), timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert isinstance(deferred.value.trigger, InboxPendingTrigger)
    assert deferred.value.method_name == "execute_complete"

    inbox.add_request(store, "carol", "spotify:user:carol", source="test")
    assert sensor.execute({}) == {"pending": 1}
    assert sensor.execute_complete({}, {"pending": 3}) == {"pending": 3}
    with pytest.raises(ValueError, match="min_pending"):
        NewUsersSensor(task_id="bad", min_pending="many").execute({})


# --- bootstrap params ---------------------------------------------------------------------------


def test_resolve_refs_from_list_dedupes_and_keeps_order():
    assert bootstrap.resolve_refs([" a ", "b", "a"]) == ["a", "b"]


@pytest.mark.parametrize(
    "refs, world_users, fragment",
    [
        ("spotify:user:x", None, "one string"),
        (["ok", ""], None, "non-empty string"),
        ([], None, "nothing to ingest"),
        (["a"], 5, "not both"),
        ([], -3, "positive integer"),
        ([], "lots", "positive integer"),
    ],
)
def test_resolve_refs_rejects_bad_params(refs, world_users, fragment, tmp_path):
    with pytest.raises(BootstrapParamsError, match=fragment):
        bootstrap.resolve_refs(refs, world_users, default_world_dir=tmp_path)


def test_resolve_refs_from_world(tmp_path):
    with pytest.raises(BootstrapParamsError, match="soundmates world generate"):
        bootstrap.resolve_refs([], 2, default_world_dir=tmp_path)
    (tmp_path / "users.txt").write_text("alice\nbob.#1\n\ncarol\n", encoding="utf-8")
    assert bootstrap.resolve_refs([], 2, default_world_dir=tmp_path) == ["spotify:user:alice", "spotify:user:bob.#1"]
    with pytest.raises(BootstrapParamsError, match="has only 3"):
        bootstrap.resolve_refs([], 4, world_dir=str(tmp_path))


def test_batches():
    assert bootstrap.batches(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    with pytest.raises(BootstrapParamsError, match="batch_size"):
        bootstrap.batches(["a"], 0)


# --- credentials --------------------------------------------------------------------------------


def test_credentials_from_connection_are_scoped_and_not_logged(monkeypatch, caplog):
    import os

    from soundmates.orchestration.credentials import spotify_credentials

    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPOTIFY_DEFAULT",
        json.dumps(
            {
                "conn_type": "generic",
                "login": "client-id-123",
                "password": "s3cret-value-xyz",
                "extra": {"api_url": "http://127.0.0.1:9/v1/"},
            }
        ),
    )
    caplog.set_level("DEBUG")
    with spotify_credentials() as source:
        assert source == "connection:spotify_default"
        assert os.environ["SPOTIPY_CLIENT_SECRET"] == "s3cret-value-xyz"
        from soundmates.config import get_settings

        assert get_settings().spotify_api_url == "http://127.0.0.1:9/v1/"
    assert "SPOTIPY_CLIENT_SECRET" not in os.environ  # restored after the block
    assert "s3cret-value-xyz" not in caplog.text


def test_credentials_missing_everywhere_say_where_to_put_them(monkeypatch):
    from soundmates.orchestration.credentials import spotify_credentials

    monkeypatch.delenv("AIRFLOW_CONN_SPOTIFY_DEFAULT", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="spotify_default.*SPOTIPY_CLIENT_ID"):
        with spotify_credentials():
            pass


def test_credentials_from_env(monkeypatch):
    from soundmates.orchestration.credentials import spotify_credentials

    monkeypatch.delenv("AIRFLOW_CONN_SPOTIFY_DEFAULT", raising=False)
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "secret")
    with spotify_credentials() as source:
        assert source == "environment"


# --- steps ----------------------------------------------------------------------------------------


def test_merge_ingest_adds_batches_and_fails_only_when_nobody_ingested():
    total = steps.merge_ingest(
        [
            {"ingested": 2, "skipped": 1, "failed": [{"ref": "x", "reason": "unknown user"}], "api_calls": 10},
            {"ingested": 1, "skipped": 0, "failed": [], "api_calls": 4},
        ]
    )
    assert total == {
        "batches": 2,
        "ingested": 3,
        "skipped": 1,
        "api_calls": 14,
        "failed": [{"ref": "x", "reason": "unknown user"}],
        "deferred": [],
    }
    with pytest.raises(RuntimeError, match="no user could be ingested.*unknown user"):
        steps.merge_ingest([{"ingested": 0, "skipped": 0, "failed": [{"ref": "x", "reason": "unknown user"}]}])


def test_training_record_and_new_user_count(settings):
    assert steps.last_training(settings) is None
    assert steps.new_users_since_training(settings) == {"users": 0, "trained_with": 0, "new": 0}
    state = steps.record_training(7, {"version": "v3", "promoted": True}, settings)
    assert steps.last_training(settings) == state
    assert state["users"] == 7 and state["model_version"] == "v3"
    # Fewer users now than at training (users removed): never a negative count.
    assert steps.new_users_since_training(settings)["new"] == 0


def test_promotion_decision_reads_the_gate():
    assert steps.promotion_decision({"version": 2, "promoted": True})["promoted"] is True
    refused = steps.promotion_decision({"version": "v2", "promoted": False, "reason": "recall@10 0.40 < 0.45"})
    assert refused == {"promoted": False, "version": "v2", "reason": "recall@10 0.40 < 0.45"}


def test_jsonable_handles_stage_results():
    from soundmates.spotify.ingest import FailedRef, IngestSummary

    out = steps.jsonable(IngestSummary(ingested=1, failed=[FailedRef(ref="r", reason="why")]))
    assert out["failed"] == [{"ref": "r", "reason": "why"}]
    json.dumps(out)


def test_jsonable_turns_non_finite_metrics_into_null_for_strict_json_xcom():
    import numpy as np

    out = steps.jsonable({"genre_recall@20": float("nan"), "x": np.float32("inf"), "ok": np.float64(0.5), "n": [float("-inf")]})
    assert out == {"genre_recall@20": None, "x": None, "ok": 0.5, "n": [None]}
    json.dumps(out, allow_nan=False)


def test_plugin_links_to_dashboard(monkeypatch):
    import importlib.util

    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    from tests.fixtures.airflow import REPO_ROOT

    monkeypatch.setenv("SOUNDMATES_DASHBOARD_URL", "http://127.0.0.1:9999/")
    spec = importlib.util.spec_from_file_location("soundmates_plugin_under_test", REPO_ROOT / "plugins" / "soundmates_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = [ExternalViewResponse(**v) for v in module.SoundmatesPlugin.external_views]
    assert views[0].href == "http://127.0.0.1:9999" and views[0].destination == "nav"
    assert {v.destination for v in views} == {"nav", "dag"}
    assert module.soundmates_dashboard_url() == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    "counts, has_model, asset, force, expected",
    [
        ({"users": 50, "new": 50}, False, False, False, False),  # weekly run before the bootstrap trained
        ({"users": 50, "new": 5}, True, False, False, True),  # weekly / manual: always
        ({"users": 50, "new": 5}, True, True, False, False),  # asset-triggered, too few new users
        ({"users": 150, "new": 100}, True, True, False, True),  # asset-triggered, enough
        ({"users": 50, "new": 5}, True, True, True, True),  # forced
        ({"users": 0, "new": 0}, True, False, True, False),  # nothing stored
    ],
)
def test_retrain_decision(counts, has_model, asset, force, expected):
    decision = steps.retrain_decision(counts, has_model=has_model, asset_triggered=asset, min_new_users=100, force=force)
    assert decision["train"] is expected
    assert decision["reason"]
