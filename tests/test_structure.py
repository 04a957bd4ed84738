"""The shape of the code, read with ``ast``: dependencies point one way, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMORA = ROOT / "memora"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """The memora modules ``path`` imports anywhere in its body (``from a import b`` counts as
    ``a.b`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
    return found & known


def graph(paths: list[Path]) -> dict[str, set[str]]:
    names = {module_name(p): p for p in paths}
    known = set(names)
    return {name: imports(path, known) - {name} for name, path in names.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def memory_modules() -> list[Path]:
    return [*sorted((MEMORA / "memory").rglob("*.py")), MEMORA / "_sqlite.py"]


def test_no_import_cycle_in_the_memory_package() -> None:
    edges = graph(memory_modules())
    assert cycles(edges) == []
    # the storage layer does not depend on the neural model, nor on the store above it
    assert not edges["memora._sqlite"] & {n for n in edges if n.startswith("memora.memory")}
    assert "memora.memory.neural" not in edges["memora.memory.types"]
    assert "memora.memory.store" not in edges["memora.memory.jsonl"]


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_memory_modules_are_small() -> None:
    sizes = {p.name: len(p.read_text("utf-8").splitlines()) for p in memory_modules()}
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_the_store_facade_keeps_its_methods_short() -> None:
    tree = ast.parse((MEMORA / "memory" / "store.py").read_text("utf-8"))
    store = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MemoryStore")
    lengths = {
        f.name: (f.end_lineno or f.lineno) - f.lineno + 1
        for f in store.body
        if isinstance(f, ast.FunctionDef)
    }
    assert lengths["search"] < 40 and lengths["add"] < 40 and lengths["add_many"] < 60
    assert max(lengths.values()) <= 60, lengths


def package_modules() -> dict[str, Path]:
    """Every module of memora, memora.agents and memora.tui, by its import name."""
    found = {}
    for folder, prefix in ((MEMORA, ("memora",)), (ROOT / "agents", ("memora", "agents")),
                           (ROOT / "tui", ("memora", "tui"))):  # fmt: skip
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join(prefix + parts)] = path
    return found


def test_no_import_cycle_in_memora() -> None:
    modules = package_modules()
    known = set(modules)
    edges = {name: imports(path, known) - {name} for name, path in modules.items()}
    assert cycles(edges) == []


def test_the_model_layer_stands_below_prompting() -> None:
    modules = package_modules()
    known = set(modules)
    for name, path in modules.items():
        if name.startswith("memora.llm"):
            assert not {m for m in imports(path, known) if m.startswith("memora.prompting")}, name


def test_only_the_native_layer_touches_llama_cpp() -> None:
    native = MEMORA / "llm" / "llamacpp" / "native.py"
    for name, path in package_modules().items():
        tree = ast.parse(path.read_text("utf-8"))
        uses = [
            node
            for node in ast.walk(tree)
            if (
                isinstance(node, ast.Import)
                and any(a.name.startswith("llama_cpp") for a in node.names)
            )
            or (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llama_cpp"))
        ]
        assert path == native or not uses, f"{name} imports llama_cpp"
    tree = ast.parse(native.read_text("utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "llama_cpp"
        ):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            assert not private, node.attr  # no private part of the library
            assert node.attr != "Llama", "the native layer does not use the high-level Llama"
        if isinstance(node, ast.ImportFrom) and node.module == "llama_cpp":
            assert all(not a.name.startswith("_") for a in node.names)


def test_command_groups_never_import_the_main_group() -> None:
    modules = package_modules()
    known = set(modules)
    for name, path in modules.items():
        if name.startswith("memora.cli.") and name not in (
            "memora.cli.main",
            "memora.cli.__main__",
        ):
            assert not imports(path, known) & {"memora.cli", "memora.cli.main"}, name


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args]
    count = len(names) + len(args.kwonlyargs)
    count += (args.vararg is not None) + (args.kwarg is not None)
    return count - (names[:1] in (["self"], ["cls"]))


def test_modules_functions_and_signatures_stay_small() -> None:
    """Every module of memora, memora.agents and memora.tui under 450 lines, every function
    under 60 lines, no signature over 10 parameters (dataclass configs carry the rest)."""
    over = []
    for name, path in sorted(package_modules().items()):
        text = path.read_text("utf-8")
        if len(text.splitlines()) > 450:
            over.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 60:
                    over.append(f"{name}.{node.name}: {lines} lines")
                if _parameters(node) > 10:
                    over.append(f"{name}.{node.name}: {_parameters(node)} parameters")
    assert over == []
