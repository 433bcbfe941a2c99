"""Transparent huge pages for a serving process's in-memory index: the glibc setting that asks for them, and whether it is on.

A loaded Voyager graph (~0.5 GB at 1M users) is read at random, one node per hop: with 4 KiB pages
nearly every hop misses the TLB. Where the kernel gives huge pages only on request
(``/sys/kernel/mm/transparent_hugepage/enabled`` = ``madvise``, Debian's default), glibc asks for them
for its large allocations when the process starts with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``.
Measured at 1M users (M 32, 2 cores, 2026-12-03): a raw Voyager query took 0.19 ms instead of 0.42 ms
at the same recall, and ``UserIndex.query`` (bench_index, fresh serving processes side by side) 0.48 ms
instead of 0.66 ms. The setting is read once, at process start, so the launchers set it (``scripts/airflow_env.sh``,
``docker-compose.yaml``); Annoy's memory-mapped file is page cache and is not affected.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVING_TUNABLES = "glibc.malloc.hugetlb=1"
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def kernel_mode() -> str | None:
    """The kernel's THP mode (``always``, ``madvise`` or ``never``), None where it cannot be read."""
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def requested() -> bool:
    """Whether this process's glibc was started asking for huge pages (``glibc.malloc.hugetlb`` 1 or 2)."""
    for part in os.environ.get("GLIBC_TUNABLES", "").replace(":", " ").split():
        name, _, value = part.partition("=")
        if name == "glibc.malloc.hugetlb" and value in ("1", "2"):
            return True
    return False


def in_use() -> bool:
    """Whether large allocations of this process get huge pages (the kernel gives them always, or glibc asks)."""
    mode = kernel_mode()
    return mode == "always" or (mode == "madvise" and requested())
