"""The test tree's own rules: no test module imports another (shared code lives in conftest.py,
tests/fixtures/ and tests/helpers/), so every module runs alone and in any order."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# `from tests.test_x import y`, `from test_x import y`, `import tests.test_x`, `import_module("tests.test_x")`,
# also inside a string (a script handed to a child process imports just the same).
_TEST_MODULE = r"(?:tests\.)?test_\w+"
_IMPORT_OF_A_TEST_MODULE = re.compile(
    rf"^\s*(?:from\s+{_TEST_MODULE}\s+import\b|import\s+{_TEST_MODULE}\b)|import_module\(\s*[\"']{_TEST_MODULE}[\"']",
    re.MULTILINE,
)


def imports_of_test_modules(root: Path) -> list[str]:
    """``path:line: text`` for every place under ``root`` that imports a test module."""
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for match in _IMPORT_OF_A_TEST_MODULE.finditer(source):
            line = source.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(root)}:{line}: {match.group(0).strip()}")
    return found


def test_no_test_module_imports_another():
    this_file = Path(__file__).name  # its specimens are strings
    found = [f for f in imports_of_test_modules(TESTS) if not f.startswith(f"{this_file}:")]
    assert not found, (
        "a test module imports another test module; move what they share to tests/helpers/ "
        "(plain code) or tests/fixtures/ (fixtures, registered in conftest.py):\n" + "\n".join(found)
    )


def test_the_check_sees_every_form_of_such_an_import(tmp_path):
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "fine.py").write_text("from tests.helpers.encoders import HashModel\nimport pytest\n")
    (tmp_path / "test_a.py").write_text(
        "from tests.test_b import make_profile\n"
        "def f():\n"
        "    import tests.test_c\n"
        "    from test_d import x  # noqa\n"
        "SCRIPT = '''\n"
        "    from tests.test_e import HashModel\n"
        "'''\n"
        "importlib.import_module('tests.test_f')\n"
        "from tests.fixtures.spotify import world_user_ids\n"
        "# the test_x module is mentioned here, not imported\n"
    )
    found = imports_of_test_modules(tmp_path)
    assert [f.split(":")[1] for f in found] == ["1", "3", "4", "6", "8"], found
    assert all(f.startswith("test_a.py:") for f in found)
