"""The package's floors: data flows one way."""

from __future__ import annotations

from pathlib import Path


def test_lower_stages_never_import_higher_ones():
    """Data flows one way (docs/ARCHITECTURE.md): a lower floor never imports a higher one,
    and the Spotify client never imports the local world (real API vs local server is configuration)."""
    import re

    floor = {
        "profiles": 1,
        "config": 1,
        "keys": 1,
        "logs": 1,
        "atomic": 1,
        "objstore": 1,
        "catalog_data": 1,
        "spotify": 2,
        "world": 2,
        "export": 2,
        "features": 2,
        "store": 2,
        "index": 2,
        "sources": 2,
        "model": 3,
        "recommend": 4,
        "pipelines": 4,
        "orchestration": 4,
        "cli": 5,
    }
    root = Path(__file__).resolve().parents[1] / "src" / "soundmates"
    violations = []
    for f in root.rglob("*.py"):
        stage = f.relative_to(root).parts[0].removesuffix(".py")
        if stage not in floor:
            continue
        for target in re.findall(r"(?:from|import)\s+soundmates\.(\w+)", f.read_text(encoding="utf-8")):
            if floor.get(target, 0) > floor[stage] or (stage == "spotify" and target == "world"):
                violations.append(f"{f.relative_to(root)} imports soundmates.{target}")
    assert violations == []


def test_only_the_world_stage_its_cli_and_ground_truth_evaluation_import_the_simulator():
    """Nothing outside world/ depends on the local Spotify world: an export is imported the same way whether
    the configured API is Spotify or the local server (ids via search, genres via soundmates.catalog_data).
    Only world/ itself, its CLI (`soundmates world`, `soundmates spotify serve`) and the evaluation
    against a world's ground truth (pipelines/, and sources/world.py: profiles straight from the
    generator for `soundmates evaluate --dataset world`, as sources/hetrec.py reads HetRec) may import it."""
    import re

    allowed = {"world", "cli", "pipelines", "sources"}
    root = Path(__file__).resolve().parents[1] / "src" / "soundmates"
    importers = set()
    for f in root.rglob("*.py"):
        if re.search(
            r"(?:from|import)\s+soundmates\.world\b|from\s+soundmates\s+import\s+world\b", f.read_text(encoding="utf-8")
        ):
            importers.add(f.relative_to(root).parts[0].removesuffix(".py"))
    assert importers - allowed == set()
    assert "export" not in importers


def _imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of what ``path`` (module ``module``) imports: plain, ``from``, relative and
    ``importlib.import_module("...")`` with a literal name (a form the regexes above cannot see)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def test_export_reaches_the_simulator_by_no_import_form(tmp_path):
    """export/ (and spotify/, which it calls for searches) imports soundmates.world in no form: not
    absolutely, not relatively (``from ..world import``), not through importlib."""
    root = Path(__file__).resolve().parents[1] / "src"
    offenders = []
    for stage in ("export", "spotify"):
        for f in (root / "soundmates" / stage).rglob("*.py"):
            module = ".".join(f.relative_to(root).with_suffix("").parts)
            hits = {m for m in _imported_modules(f, module) if m == "soundmates.world" or m.startswith("soundmates.world.")}
            offenders += [f"{module} imports {m}" for m in sorted(hits)]
    assert offenders == []
    # the check sees the forms a regex misses
    probe = tmp_path / "probe.py"
    probe.write_text("from ..world import catalog\nfrom . import genres\nimportlib.import_module('soundmates.world.server')\n")
    assert _imported_modules(probe, "soundmates.export.probe") >= {
        "soundmates.world.catalog",
        "soundmates.export.genres",
        "soundmates.world.server",
    }
