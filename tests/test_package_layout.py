"""The package's map holds: no two modules import each other (lazy imports inside functions included), and argparse
lives in mbfast.cli only, so library modules are called, not parsed."""
from __future__ import annotations

import ast
from pathlib import Path

import mbfast

PACKAGE = Path(mbfast.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every mbfast module -> the mbfast modules it imports anywhere in its body (TYPE_CHECKING blocks included)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")} | {"mbfast._core": PACKAGE / "_core.pyi"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name == "mbfast._core":  # compiled: imports nothing of the package
            graph[name] = set()
            continue
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mbfast"):
                for alias in node.names:  # `from mbfast import models` imports a module, `from mbfast.x import y` x
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.startswith("mbfast")}
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def test_no_two_modules_import_each_other() -> None:
    graph = imports()
    loops = set()
    for name, targets in graph.items():
        seen, todo = set(), list(targets)
        while todo:
            current = todo.pop()
            if current == name:
                loops.add(name)
                break
            if current not in seen:
                seen.add(current)
                todo += graph[current]
    assert sorted(loops) == [], f"modules on an import loop: {sorted(loops)}"


def test_only_the_command_line_imports_argparse() -> None:
    users = sorted(module_name(path) for path in PACKAGE.rglob("*.py")
                   if "import argparse" in path.read_text() and not module_name(path).startswith("mbfast.cli"))
    assert users == []
