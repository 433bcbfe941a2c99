"""Embedding rows with a two-tower model, and the evaluation report (JSON, markdown table, plot).

The protocol itself (population, forms, metrics) is :mod:`soundmates.model.protocol`; one run
(split, train, tune, gate, evaluate) is :mod:`soundmates.model.experiment`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundmates.atomic import atomic_write_text

REPORT_METRICS = ("taste_ndcg@10", "taste_precision@10", "neighbour_recall@20", "friends@10", "recall@10")


def embed_rows(model, pre, rows: pd.DataFrame, *, tower: str = "candidate", batch: int = 4096) -> np.ndarray:
    import torch

    enc = pre.transform(rows)
    fn = model.embed_query if tower == "query" else model.embed_candidate
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            out.append(fn({k: torch.from_numpy(v[s : s + batch]) for k, v in enc.items()}).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.dim), dtype=np.float32)


def _keys(methods: dict[str, dict]) -> list[str]:
    return [k for k in REPORT_METRICS if any(isinstance(v.get(k), float) and math.isfinite(v[k]) for v in methods.values())]


def write_report(result: dict[str, Any], out_dir: str | Path, name: str = "evaluation") -> dict[str, str]:
    """``<name>.json``, a markdown table ``<name>.md`` and a plotly bar chart ``<name>.html``."""
    import plotly.graph_objects as go

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{name}.json", json.dumps(result, indent=2, default=str))  # read back by the dashboard
    atomic_write_text(out / f"{name}.md", markdown_table(result))
    methods = {k: v for k, v in result["methods"].items() if "skipped" not in v}
    keys = _keys(methods)
    fig = go.Figure(
        [
            go.Bar(
                name=m,
                x=keys,
                y=[v.get(k) for k in keys],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [v["ci95"][k][1] - v[k] for k in keys],
                    "arrayminus": [v[k] - v["ci95"][k][0] for k in keys],
                },
            )
            for m, v in methods.items()
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_title="score (95% interval)",
        title=f"{result.get('dataset', '')}: {result.get('users')} held-out users vs {result.get('candidates')} candidates; served {result.get('served')}",
    )
    fig.write_html(out / f"{name}.html", include_plotlyjs=True, full_html=True)
    return {"json": str(out / f"{name}.json"), "markdown": str(out / f"{name}.md"), "html": str(out / f"{name}.html")}


def markdown_table(result: dict[str, Any]) -> str:
    methods = result["methods"]
    keys = _keys({k: v for k, v in methods.items() if "skipped" not in v})
    lines = [
        f"{result.get('users')} held-out users vs {result.get('candidates')} candidates ({result.get('dataset', '')}, "
        f"seed {result.get('seed')}); served: **{result.get('served')}** — {result.get('reason', '')}",
        "",
        "| method | " + " | ".join(keys) + " | thin: " + " | thin: ".join(keys) + " |",
        "|---|" + "---|" * (2 * len(keys)),
    ]
    thin = result.get("slices", {}).get("thin", {})
    for m, v in methods.items():
        if "skipped" in v:
            lines.append(f"| {m} | " + " | ".join("–" for _ in keys * 2) + f" |  (skipped: {v['skipped']})")
            continue
        cells = [f"{v[k]:.3f} [{v['ci95'][k][0]:.3f}, {v['ci95'][k][1]:.3f}]" for k in keys]
        cells += [f"{thin.get(m, {}).get(k, float('nan')):.3f}" for k in keys]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    validation = result.get("validation") or {}
    val = validation.get("scores") or {}
    if val:
        metric = validation.get("metric", "neighbour_recall@20")
        lines += ["", f"Validation {metric} (gate, tuning): " + ", ".join(f"{m} {s:.4f}" for m, s in val.items())]
    tuned = result.get("tuned") or {}
    if tuned:
        lines += ["Chosen settings: " + "; ".join(f"{m} {t.get('params')}" for m, t in tuned.items() if "params" in t)]
    return "\n".join(lines) + "\n"
