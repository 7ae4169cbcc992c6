"""The layering the design promises, read from the source: who may import whom, and no cycles.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``. The
rules (README, "Layout"):

- ``ppruning`` (the library) imports none of ``jobs``, ``api``, ``worker``, ``client``;
- ``jobs`` imports only ``ppruning``; ``api`` and ``worker`` import ``jobs`` and ``ppruning``,
  never each other; ``migrations`` read ``jobs``;
- ``client`` imports only the standard library and httpx (it is installed without torch);
- outside the library, code imports from ``ppruning`` only the names ``ppruning.__all__`` lists;
- no cycle among first-party modules.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ppruning", "jobs", "api", "worker", "ppruning_client", "migrations")
ALLOWED: dict[str, set[str]] = {
    "ppruning": {"ppruning"},
    "jobs": {"jobs", "ppruning"},
    "api": {"api", "jobs", "ppruning"},
    "worker": {"worker", "jobs", "ppruning"},
    "ppruning_client": {"ppruning_client"},
    "migrations": {"jobs"},
}
CLIENT_THIRD_PARTY = {"httpx"}

#: The library's packages (and root modules) in layers, bottom first. A package may import
#: its own modules and those of lower layers; nothing of its own layer or above.
LIBRARY_LAYERS: list[tuple[str, ...]] = [
    ("version", "errors", "progress"),  # leaves: the interfaces every layer reports and fails through
    ("arch",),  # one adapter per model family
    ("units", "tasks"),  # method-independent vocabulary (masks, cost, budget); task data and padding
    ("model",),  # loading, owned weights, surgery, mask hooks, checkpoints, the portable format
    ("measure", "recovery"),  # speed and task scores; reconstruction and distillation
    ("methods",),  # the contract, the registry and one package per method
    ("run",),  # one run of a method: config, plan, prune, outputs, report, provenance, resume
    ("finetune", "export"),  # what follows a prune run
    ("discovery",),  # what the registries offer, for the API and the CLI
    ("cli",),  # the ppruning command
]
#: Imports between method packages that are allowed, and why.
METHOD_EXCEPTIONS = {
    # random at P-pruning's counts declares P-pruning's clustering parameters; it runs the method
    # through the registry
    ("ppruning.methods.baselines", "ppruning.methods.ppruning.params"),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the module imported (for ``from X import name``: X, or X.name when that is a module)
    names: tuple[str, ...]  # names taken with ``from X import ...``; empty for ``import X``
    line: int

    @property
    def where(self) -> str:
        return f"{self.module.replace('.', '/')}.py:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


MODULES = {_module_name(path): path for path in _source_files()}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> Iterator[Import]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in MODULES else source
                yield Import(module, target, (alias.name,), node.lineno)


ALL_IMPORTS = [imp for module, path in MODULES.items() for imp in imports_of(module, path)]


def _top(name: str) -> str:
    return name.split(".")[0]


def _public_names() -> set[str]:
    """``ppruning.__all__`` (importing the package root is cheap: every name loads on first use)."""
    import ppruning

    return set(ppruning.__all__)


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{imp.where}: {imp.module} imports {imp.target}"
        for imp in ALL_IMPORTS
        if _top(imp.target) in PACKAGES and _top(imp.target) not in ALLOWED[_top(imp.module)]
    ]
    assert not wrong, "imports across the layers:\n" + "\n".join(wrong)


def test_the_client_needs_only_the_standard_library_and_httpx() -> None:
    wrong = [
        f"{imp.where}: {imp.target}"
        for imp in ALL_IMPORTS
        if _top(imp.module) == "ppruning_client"
        and _top(imp.target) not in sys.stdlib_module_names | CLIENT_THIRD_PARTY | {"ppruning_client", "__future__"}
    ]
    assert not wrong, "the client imports more than httpx and the standard library:\n" + "\n".join(wrong)


def test_the_service_imports_only_what_the_library_declares_public() -> None:
    public = _public_names()
    wrong = []
    for imp in ALL_IMPORTS:
        if _top(imp.module) == "ppruning" or _top(imp.target) != "ppruning":
            continue
        if imp.target != "ppruning" or not imp.names:
            wrong.append(f"{imp.where}: imports {imp.target} (use 'from ppruning import NAME')")
        elif not set(imp.names) <= public:
            wrong.append(f"{imp.where}: {', '.join(sorted(set(imp.names) - public))} not in ppruning.__all__")
    assert not wrong, "imports of the library's internals:\n" + "\n".join(wrong)


def test_every_public_name_of_the_library_exists_and_no_submodule_shadows_one() -> None:
    import ppruning

    missing = [name for name in ppruning.__all__ if not hasattr(ppruning, name)]
    assert not missing
    # Once ppruning.X is imported, the attribute X of the package is that module, whatever
    # __getattr__ would have returned: a public name must not be a submodule's name.
    submodules = {m.split(".")[1] for m in MODULES if m.startswith("ppruning.")}
    assert not submodules & set(ppruning.__all__)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_first_party_modules() -> None:
    edges: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if imp.target in MODULES and imp.target != imp.module:
            edges.setdefault(imp.module, set()).add(imp.target)
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert _cycles(edges) == expected


def _library_part(module: str) -> str | None:
    """The layer entry of a library module: its package under ``ppruning`` or its root module's name."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ppruning" and len(parts) > 1 else None


def test_the_library_layer_table_names_every_package_once() -> None:
    named = [part for layer in LIBRARY_LAYERS for part in layer]
    present = {_library_part(m) for m in MODULES} - {None}
    assert sorted(named) == sorted(set(named)) and set(named) == present


def test_the_library_packages_import_only_the_layers_below_them() -> None:
    layer_of = {part: i for i, layer in enumerate(LIBRARY_LAYERS) for part in layer}
    wrong = []
    for imp in ALL_IMPORTS:
        source, target = _library_part(imp.module), _library_part(imp.target)
        if source is None or target is None or source == target:
            continue
        if layer_of[target] >= layer_of[source]:
            layers = f"layer {layer_of[source]} -> layer {layer_of[target]}"
            wrong.append(f"{imp.where}: {source} imports {target} ({layers})")
    assert not wrong, "imports across the library's layers:\n" + "\n".join(wrong)


def _method_package(module: str) -> str | None:
    """``ppruning.methods.<name>`` when ``module`` is in (or is) a method's package."""
    parts = module.split(".")
    if parts[:2] != ["ppruning", "methods"] or len(parts) < 3:
        return None
    package = ".".join(parts[:3])
    return package if (REPO / package.replace(".", "/")).is_dir() else None


def test_methods_are_one_package_each_and_reached_through_the_registry() -> None:
    wrong = []
    for imp in ALL_IMPORTS:
        target = _method_package(imp.target)
        if target is None:
            continue
        source = _method_package(imp.module)
        if source == target or imp.module == "ppruning.methods":  # the package that lists the methods
            continue
        if (source, imp.target) in METHOD_EXCEPTIONS:
            continue
        if _top(imp.module) == "ppruning":
            wrong.append(f"{imp.where}: {imp.module} imports {imp.target}")
    assert not wrong, "imports of a method's package from outside it:\n" + "\n".join(wrong)
