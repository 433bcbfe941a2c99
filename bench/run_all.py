"""Run every benchmark module (bench/bench_*.py) and write the report.

Each module exposes ``run(out_dir: Path) -> dict`` returning at least
``{"title": str, "markdown": str}`` plus its raw figures; the dict is written to
``bench/results/<name>.json`` and the markdown sections are joined into
``bench/REPORT.md``. Ratios are always measured side by side in one run, since
these machines are shared and noisy.

    python -m bench.run_all [--only ingest,features]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def write_report() -> Path:
    sections = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        sections.append(
            f"## {data.get('title', path.stem)}\n\n_{data.get('measured_at', '')}, {data.get('machine', '')}_\n\n{data.get('markdown', '')}\n"
        )
    report = BENCH_DIR / "REPORT.md"
    report.write_text(
        "# Soundmates benchmarks\n\nWritten by `make bench` from `bench/results/*.json`. "
        "Each section's ratios were measured side by side in one run.\n\n" + "\n".join(sections)
    )
    return report


def save(name: str, result: dict, wall_s: float) -> Path:
    """Write one benchmark's result to ``bench/results/<name>.json`` with when, where and how long it ran."""
    result.setdefault("title", name)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    result["wall_s"] = round(wall_s, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or discover()
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        print(f"== bench {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"bench.bench_{name}")
            result = mod.run(RESULTS)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            continue
        save(name, result, time.perf_counter() - t0)
    print(f"report: {write_report()}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
