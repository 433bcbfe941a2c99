"""Driving the dashboard in ``AppTest``: its page paths, a search, what a visitor reads, the charts drawn;
and the DAG runs a stand-in Airflow answers with."""

from __future__ import annotations

import json

FIND, MAP, CONSENT, PIPELINE = "views/find.py", "views/map.py", "views/consent.py", "views/pipeline.py"


def search(at, ref: str):
    at.text_input(key="find_ref").input(ref)
    next(b for b in at.button if b.label == "Find my soundmates").click()
    return at.run()


def texts(at) -> str:
    """Everything a visitor can read on the page, as one string."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader"):
        parts += [str(el.value) for el in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


def plotly_specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


RUNS = {
    "dag_runs": [
        {
            "dag_run_id": "manual__2026-11-28T10:00",
            "dag_id": "soundmates_rebuild",
            "state": "success",
            "run_type": "manual",
            "run_after": "2026-11-28T10:00:00Z",
            "start_date": "2026-11-28T10:00:01Z",
            "end_date": "2026-11-28T10:02:31Z",
        },
        {
            "dag_run_id": "asset__2026-11-28T11:00",
            "dag_id": "soundmates_new_users",
            "state": "running",
            "run_type": "asset_triggered",
            "run_after": "2026-11-28T11:00:00+00:00",
            "start_date": "2026-11-28T11:00:02+00:00",
            "end_date": None,
        },
    ],
    "total_entries": 2,
}
