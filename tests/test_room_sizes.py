"""scripts/room_sizes.py finds the largest modules and longest functions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "room_sizes.py"


def test_finds_a_planted_long_function_and_module(tmp_path):
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    body = "\n".join(f"        x{i} = {i}" for i in range(80))
    (pkg / "big.py").write_text(f"class Room:\n    @staticmethod\n    def crowded():\n{body}\n\n\ndef small():\n    return 1\n")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "tiny.py").write_text("def f():\n    pass\n")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(tmp_path), "--json"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    sizes = json.loads(out.stdout)
    assert sizes["modules"][0] == {"path": "src/pkg/big.py", "lines": 87}
    assert sizes["functions"][0] == {"path": "src/pkg/big.py", "name": "Room.crowded", "line": 2, "lines": 82}
    assert [fn["name"] for fn in sizes["functions"]] == ["Room.crowded", "f", "small"]  # ties by path
    table = subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "| `Room.crowded` | `src/pkg/big.py:2` | 82 |" in table.stdout
