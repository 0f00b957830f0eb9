"""The layout of slem_ml (docs/architecture.md): rooms layered and checked, imports at the top.

`make lint` runs the same import-linter contracts; they are checked here too so that a wrong-way import
fails CI, which runs the tests.
"""

from __future__ import annotations

import ast
import configparser
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "slem_ml"
CONTRACTS = ROOT / ".importlinter"


def _rooms() -> set[str]:
    """Every subpackage and top-level module of slem_ml."""
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    rooms |= {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return {f"slem_ml.{room}" for room in rooms}


def _layered() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS)
    layers = parser["importlinter:contract:layers"]["layers"]
    return {name.strip() for line in layers.splitlines() for name in re.split(r"[|:]", line) if name.strip()}


def test_every_room_is_in_the_layers_contract() -> None:
    assert _rooms() - _layered() == set(), "a room the layers contract does not check"
    assert _layered() - _rooms() == set(), "the layers contract names a room that does not exist"


def test_the_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]


def test_a_wrong_way_import_breaks_the_contracts(tmp_path: pathlib.Path) -> None:
    """The contracts would catch a lower room importing a higher one (checked on a copy of the package)."""
    copy = tmp_path / "slem_ml"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    reader = copy / "io" / "reader.py"
    reader.write_text(reader.read_text() + "\nfrom slem_ml.run import pipeline  # noqa: E402\n")
    lint = (
        "from importlinter.cli import lint_imports; "
        f"raise SystemExit(lint_imports({str(CONTRACTS)!r}, no_cache=True))"
    )
    done = subprocess.run(
        [sys.executable, "-c", lint],
        cwd=tmp_path,  # the copy, not the checkout, is first on sys.path
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "slem_ml.io.reader -> slem_ml.run.pipeline" in done.stdout


def _function_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement inside a function or class body."""
    tree = ast.parse(path.read_text())
    top: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks at module level
            top |= {id(inner) for inner in ast.walk(node)}
        top.add(id(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            found.append((node.lineno, module or ""))
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_inside_functions_say_why(path: pathlib.Path) -> None:
    """Imports go at the top; an import inside a function is a deliberate lazy one and its line, or the
    comment line just above its block of imports, says why (``# lazy: …``)."""
    lines = path.read_text().splitlines()
    unexplained = []
    for number, module in _function_imports(path):
        index = number - 1
        while (
            index > 0
            and re.match(r"\s*(from \S+ )?import ", lines[index - 1])
            and "# lazy" not in lines[index]
        ):
            index -= 1  # up to the first import of the block
        if (
            "# lazy:" not in lines[number - 1]
            and "# lazy:" not in lines[index]
            and (index == 0 or "# lazy:" not in lines[index - 1])
        ):
            unexplained.append(f"{path.name}:{number} {module}")
    assert unexplained == []
