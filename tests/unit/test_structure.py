"""The tree keeps the shape docs/architecture.md describes: every service has the same files
holding the same kind of thing, no package imports itself in a circle, routes hold no SQL,
every command has its handler, and the documentation points nowhere outside the repository.
"""

from __future__ import annotations

import ast
import importlib
import re
import unicodedata
from pathlib import Path

import grimp
import pytest

from shared.messagebus import Command

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registration", "pairing", "notify", "reporting")
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SQL_VERBS = {"select", "update", "insert", "delete"}


def _service_files_table() -> list[str]:
    """The first column of the table under 'Files every service has' in architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Files every service has", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


def test_every_service_has_the_files_the_architecture_table_lists() -> None:
    files = _service_files_table()
    assert {"commands.py", "handlers.py", "bootstrap.py", "api.py", "views.py"} <= set(files)
    missing = [
        f"services/{service}/{name}"
        for service in SERVICES
        for name in files
        if not (ROOT / "services" / service / name).exists()
    ]
    assert missing == []


def test_no_package_imports_itself_in_a_circle() -> None:
    graph = grimp.build_graph("services", "shared", exclude_type_checking_imports=False)
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.add(" -> ".join((module, *chain)))
    assert sorted(cycles) == []


def test_no_service_imports_another() -> None:
    """Services meet through events and HTTP; only the composition root imports several."""
    graph = grimp.build_graph("services", exclude_type_checking_imports=False)
    crossings = [
        f"{importer} -> {imported}"
        for importer in (*SERVICES, "web")
        for imported in (*SERVICES, "web")
        if importer != imported
        and graph.chain_exists(f"services.{importer}", f"services.{imported}", as_packages=True)
    ]
    assert crossings == []


def _route_modules() -> list[Path]:
    return [
        path
        for service in SERVICES
        for path in sorted((ROOT / "services" / service).glob("*.py"))
        if path.name == "api.py" or path.name.endswith("_api.py")
    ]


@pytest.mark.parametrize("path", _route_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_routes_hold_no_sql(path: Path) -> None:
    """Routes turn a request into a command or a view call; queries live in the service."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"imports {a.name}" for a in node.names if a.name in SQL_VERBS]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            qualified = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            if qualified and func.value.id in ("sa", "sqlalchemy"):  # type: ignore[union-attr]
                name = func.attr  # type: ignore[union-attr]
            if name in SQL_VERBS:
                found.append(f"line {node.lineno}: {name}(")
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_command_has_its_handler(service: str) -> None:
    commands = importlib.import_module(f"services.{service}.commands")
    handlers = importlib.import_module(f"services.{service}.handlers")
    declared = {
        obj
        for obj in vars(commands).values()
        if isinstance(obj, type)
        and issubclass(obj, Command)
        and obj.__module__ == commands.__name__
        and not obj.__name__.startswith("_")  # a base commands share, not a command
    }
    assert declared, f"services/{service}/commands.py declares no command"
    assert sorted(c.__name__ for c in declared if c not in handlers.COMMANDS) == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N"))
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {
        _slug(line.lstrip("#"))
        for line in path.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }


def test_documentation_links_stay_inside_the_repository() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            where, _, anchor = target.partition("#")
            if re.match(r"[a-z]+:", where):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (outside the repository)")
                continue
            file = (doc.parent / where).resolve() if where else doc
            if not file.is_relative_to(ROOT) or not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file here)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
