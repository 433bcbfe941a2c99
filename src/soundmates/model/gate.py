"""The promotion gate: serve the best thing, measured on validation users only.

Every candidate is scored on the same validation users against the same population with
:data:`soundmates.model.protocol.VAL_METRIC` (exists without hidden taste; chosen because it ranks
methods as the test metrics do, see bench/REPORT.md); the reason names the metric. The trained
model is promoted only if it beats both the incumbent (the currently served embedder, re-scored on these users) and
the best tuned baseline; otherwise the best baseline is served if it beats the incumbent,
else the incumbent stays. The decision says which and why.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from soundmates.model.protocol import VAL_METRIC

MODEL = "two_tower"


def _ok(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and math.isfinite(v)


def decide(
    validation: dict[str, float],
    *,
    incumbent: dict[str, Any] | None = None,
    servable: set[str] | None = None,
    metric: str = VAL_METRIC,
) -> dict[str, Any]:
    """``{"served", "promote", "reason"}``: ``promote`` is the method to make current (None: keep the incumbent).

    ``validation``: method -> validation score; ``incumbent``: ``{"method", "version", "val"}`` or None.
    """
    servable = set(validation) if servable is None else set(servable)
    model = validation.get(MODEL)
    base = {m: v for m, v in validation.items() if m != MODEL and m in servable and _ok(v)}
    best = max(base, key=lambda m: (base[m], m)) if base else None
    inc = incumbent if incumbent and _ok(incumbent.get("val")) else None
    inc_txt = f"incumbent {inc['method']} ({inc.get('version')}) {inc['val']:.4f}" if inc else "(no incumbent)"
    best_txt = f"best tuned baseline {best} {base[best]:.4f}" if best else "no baseline"
    if _ok(model) and (best is None or model > base[best]) and (inc is None or model > inc["val"]):
        return {
            "served": MODEL,
            "promote": MODEL,
            "reason": f"two_tower validation {metric} {model:.4f} beats the {best_txt}"
            + (f" and the {inc_txt}" if inc else " (no incumbent)"),
        }
    lost = f"two_tower validation {metric} {model:.4f}" if _ok(model) else f"no trained model (validation {metric})"
    if best is not None and (inc is None or base[best] > inc["val"]):
        return {
            "served": best,
            "promote": best,
            "reason": f"{lost} does not beat the {best_txt}; serving {best}"
            + (f" (beats the {inc_txt})" if inc else " (no incumbent)"),
        }
    if inc is not None:
        return {
            "served": inc["method"],
            "promote": None,
            "reason": f"{lost} and the {best_txt} do not beat the {inc_txt}: incumbent kept",
        }
    return {"served": None, "promote": None, "reason": f"{lost}, {best_txt}: nothing to serve"}
