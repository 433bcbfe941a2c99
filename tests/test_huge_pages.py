"""The huge-pages setting of serving processes: parsed from GLIBC_TUNABLES, and effective in a process started with it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from soundmates.index import huge_pages

_CHILD = """
from soundmates.index import huge_pages
a = bytearray(b"x") * (64 * 2**20)  # 64 MiB through malloc, every page written (numpy would madvise by itself)
rollup = open("/proc/self/smaps_rollup").read()
kb = next(int(l.split()[1]) for l in rollup.splitlines() if l.startswith("AnonHugePages:"))
print(huge_pages.requested(), huge_pages.in_use(), kb, a[-1] == 120)
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("glibc.malloc.hugetlb=1", True),
        ("glibc.malloc.mmap_threshold=1024:glibc.malloc.hugetlb=2", True),
        ("glibc.malloc.hugetlb=0", False),
        ("glibc.malloc.hugetlb=", False),
        ("glibc.malloc.hugetlbx=1", False),
        ("", False),
    ],
)
def test_requested_reads_the_glibc_tunable(monkeypatch, value, expected):
    monkeypatch.setenv("GLIBC_TUNABLES", value)
    assert huge_pages.requested() is expected


def _child(env_value: str | None) -> tuple[bool, bool, int]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if env_value is not None:
        env["GLIBC_TUNABLES"] = env_value
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60, check=True)
    requested, in_use, kb, touched = out.stdout.split()
    assert touched == "True"
    return requested == "True", in_use == "True", int(kb)


@pytest.mark.skipif(huge_pages.kernel_mode() != "madvise", reason="the kernel gives huge pages only on request here")
def test_a_process_started_with_the_serving_tunable_gets_huge_pages():
    requested, in_use, kb = _child(huge_pages.SERVING_TUNABLES)
    assert requested and in_use
    assert kb >= 32 * 1024  # most of the 64 MiB array sits on 2 MiB pages
    requested, in_use, kb = _child(None)
    assert not requested and not in_use
    assert kb == 0


def test_the_launchers_set_the_serving_tunable():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for launcher in ("scripts/airflow_env.sh", "scripts/run_cluster.sh", "docker-compose.yaml"):
        assert huge_pages.SERVING_TUNABLES in (repo / launcher).read_text(), launcher
