"""Print the largest modules (lines) and the longest functions (lines, via ``ast``) of the project's code.

python scripts/room_sizes.py            # markdown tables, top 15 each
python scripts/room_sizes.py --json     # the same as one JSON object
python scripts/room_sizes.py --root DIR --top 20
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

FOLDERS = ("src", "dags", "plugins", "streamlit_app")


def _files(root: Path) -> list[Path]:
    return sorted(f for folder in FOLDERS for f in (root / folder).rglob("*.py") if "__pycache__" not in f.parts)


def measure(root: Path, top: int = 15) -> dict[str, list[dict]]:
    """``{"modules": [{path, lines}], "functions": [{path, name, line, lines}]}``, largest first."""
    modules, functions = [], []
    for f in _files(root):
        text = f.read_text(encoding="utf-8")
        rel = f.relative_to(root).as_posix()
        modules.append({"path": rel, "lines": len(text.splitlines())})
        tree = ast.parse(text, filename=rel)
        functions += list(_functions(tree, rel))
    modules.sort(key=lambda m: (-m["lines"], m["path"]))
    functions.sort(key=lambda fn: (-fn["lines"], fn["path"], fn["line"]))
    return {"modules": modules[:top], "functions": functions[:top]}


def _functions(tree: ast.AST, rel: str, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield {"path": rel, "name": prefix + node.name, "line": start, "lines": node.end_lineno - start + 1}
            yield from _functions(node, rel, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, rel, prefix + node.name + ".")
        else:
            yield from _functions(node, rel, prefix)


def markdown(sizes: dict[str, list[dict]]) -> str:
    out = ["| module | lines |", "|---|---:|"]
    out += [f"| `{m['path']}` | {m['lines']} |" for m in sizes["modules"]]
    out += ["", "| function | where | lines |", "|---|---|---:|"]
    out += [f"| `{fn['name']}` | `{fn['path']}:{fn['line']}` | {fn['lines']} |" for fn in sizes["functions"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = parser.parse_args(argv)
    sizes = measure(args.root, args.top)
    print(json.dumps(sizes, indent=2) if args.json else markdown(sizes), end="" if not args.json else "\n")


if __name__ == "__main__":
    main()
