"""The floor plan: imports run one way (no circles, not even through imports inside functions)."""

from __future__ import annotations

import ast
import functools

from common.paths import PROJECT_ROOT

PACKAGES = ("common", "datatools", "train", "deploy", "evaluate", "predict", "networks", "pipeline", "bench", "tools")
"""The project's own packages."""


def module_name(path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports anywhere in its source (function-level imports included;
    read once per session: the tests only read it)."""
    files = [p for package in PACKAGES for p in sorted((PROJECT_ROOT / package).rglob("*.py"))]
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            targets |= {target for target in found if target in modules and target != name}
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_circles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


TRAIN_ROOMS = {"train.config": ("base", 0), "train.metrics": ("base", 0), "train.config_checks": ("base", 0),
               "train.process": ("process", 1), "train.data": ("data", 2), "train.loop": ("loop", 3),
               "train.watch": ("watch", 4), "train.resilience": ("resilience", 4), "train.run": ("run", 5),
               "train.experiments": ("experiments", 6), "train.__main__": ("command line", 7)}
"""The rooms of train/ and their layers (docs/contracts.md, "Where code lives"): a room imports only lower ones."""


def train_room(module: str) -> tuple[str, int] | None:
    """The room and layer of a module of train/ (None for the package itself and for other packages)."""
    matches = [prefix for prefix in TRAIN_ROOMS if module == prefix or module.startswith(f"{prefix}.")]
    return TRAIN_ROOMS[max(matches, key=len)] if matches else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import of train/ that points to a room on the same layer or above."""
    found = []
    for module, targets in graph.items():
        room = train_room(module)
        for target in targets:
            other = train_room(target)
            if room and other and other != room and other[1] >= room[1]:
                found.append(f"{module} -> {target}")
    return sorted(found)


def test_every_module_of_train_is_in_a_room():
    modules = [name for name in import_graph() if name.startswith("train.")]
    assert [name for name in modules if train_room(name) is None] == []


def test_the_rooms_of_train_import_only_rooms_below_them():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    assert upward_imports({"train.loop.trainer": {"train.watch.plots"}, "train.watch.steps": {"train.loop.hooks"},
                           "train.watch.x": {"train.resilience.y"}}) == [
        "train.loop.trainer -> train.watch.plots", "train.watch.x -> train.resilience.y"]
