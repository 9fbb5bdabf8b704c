"""The package's layout, as docs/design.md draws it: rings, imports pointing inward, a small core.

The import graph is built with `ast` from every module under tinylm/, counting imports inside
functions too. A module may import only from its own ring or rings inside it, and no import
cycle is allowed. The core is the GPT's import closure; it stays within 3,000 lines, the engine
within 400.
"""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "tinylm"

# ring of each core module; every other module is in the outer ring
RINGS = {
    "tinylm.backend": 0,
    "tinylm.engine": 1,
    "tinylm.ops": 2,
    "tinylm.tensor": 3,
    "tinylm.functional.core": 4, "tinylm.sampling": 4,
    "tinylm.nn.module": 5, "tinylm.nn.layers": 5, "tinylm.nn.attention": 5, "tinylm.model": 5,
}
OUTER = 6


def modules():
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(name, path, known):
    """The tinylm modules that module `name` imports, anywhere in its body (a package's own
    __init__ excepted: importing a submodule runs it first, which is no design edge)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in known)
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    return {name: imports(name, path, mods) for name, path in mods.items()}, mods


def test_imports_point_inward(graph):
    edges, _ = graph
    outward = [f"{a} (ring {RINGS.get(a, OUTER)}) imports {b} (ring {RINGS.get(b, OUTER)})"
               for a, deps in edges.items() for b in deps if RINGS.get(b, OUTER) > RINGS.get(a, OUTER)]
    assert not outward, "imports pointing outward:\n" + "\n".join(outward)


def test_no_import_cycles(graph):
    edges, _ = graph
    state, cycles = {}, []

    def visit(start):                                  # iterative depth-first search, colouring nodes
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                state[nxt] = "open"
                path.append(nxt)
                stack.append((nxt, iter(sorted(edges[nxt]))))

    for name in sorted(edges):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_core_is_the_gpts_import_closure_and_fits_its_budget(graph):
    edges, mods = graph
    closure, todo = set(), ["tinylm.model"]
    while todo:
        m = todo.pop()
        if m not in closure:
            closure.add(m)
            todo += edges[m]
    assert closure == set(RINGS), f"the GPT's closure differs from the core: {sorted(closure ^ set(RINGS))}"
    lines = {m: len(mods[m].read_text(encoding="utf-8").splitlines()) for m in closure}
    assert sum(lines.values()) <= 3000, f"the core has {sum(lines.values())} lines: {lines}"
    assert lines["tinylm.engine"] <= 400


def test_package_init_files_only_import_and_re_export(graph):
    _, mods = graph
    for name, path in mods.items():
        if path.name == "__init__.py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
            assert not defs, f"{path.relative_to(REPO)} defines {defs}"


def test_design_md_table_gives_every_module_with_its_line_count(graph):
    _, mods = graph
    table = dict(re.findall(r"^\| `(tinylm/[\w/]+\.py)` \| (\d+) \|", (REPO / "docs" / "design.md").read_text(
        encoding="utf-8"), flags=re.M))
    actual = {str(p.relative_to(REPO)).replace("\\", "/"): str(len(p.read_text(encoding="utf-8").splitlines()))
              for p in mods.values()}
    assert table == actual, ("docs/design.md's module table is out of date; rows that differ: "
                             f"{sorted(set(table.items()) ^ set(actual.items()))}")
