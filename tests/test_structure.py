"""The package's modules depend one way: no import cycle, counting the imports inside functions too (a function-level
import hides a cycle from Python at load time, not from a reader)."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fctune"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], package_dir: Path = PACKAGE) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body (``from fctune import x`` names x)."""
    here = module_name(path, package_dir)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # fctune.io.read_json -> fctune.io
                name = name.rpartition(".")[0]
            # a module's own package (its __init__) is loaded first by Python whatever it imports: not an edge
            if name and name != here and not here.startswith(name + "."):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def test_no_module_of_the_package_imports_itself_back():
    graph = import_graph()
    assert len(graph) > 40 and sum(map(len, graph.values())) > 100  # the walk found the package and its imports
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_the_graph_sees_imports_inside_functions(tmp_path):
    (tmp_path / "fctune").mkdir()
    f = tmp_path / "fctune" / "a.py"
    f.write_text("def g():\n    from fctune.b import x\n    from . import c\n    import json\n")
    found = imported_modules(f, {"fctune.a", "fctune.b", "fctune.c"}, tmp_path / "fctune")
    assert found == {"fctune.b", "fctune.c"}
