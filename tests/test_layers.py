"""The package's import graph, read with ast: layers import downward only, and there is no cycle.

Layers: core ← graph ← derive ← {compile, printing} ← {handouts, run} ← facade (symgrad.network,
symgrad/__init__, symgrad.cli). Siblings of one layer never import each other. Every import is
counted, at module level or inside a function; the one function-level import allowed to reach up is
core's printing hook (``Derivation.to_text/to_latex/to_dict`` → symgrad.printing), as SymPy's core
reaches its printers. The other function-level imports allowed are the deferred loads of the two
outermost modules (issue 15: ``symgrad --help`` without SymPy): the facade's ``_load`` in
symgrad/__init__ and the CLI's ``_engine``; they are still checked to flow downward.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "symgrad"
LAYER = {"core": 0, "graph": 1, "derive": 2, "compile": 3, "printing": 3, "handouts": 4, "run": 4,
         "network": 5, "__init__": 6, "cli": 7}
# (importing module, imported module): the documented upward reaches, each inside a function.
HOOKS = {("symgrad.core.derivation", "symgrad.printing")}
# module: the one function whose imports are the module's own, deferred to first use
DEFERRED = {"symgrad": "_load", "symgrad.cli": "_engine"}


def _modules():
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, f, parts[-1] == "__init__"


def _imports(name, path, is_pkg):
    """(imported module, line, at module level?) for every symgrad import in the file; an import
    in the module's DEFERRED function counts as at module level."""
    tree = ast.parse(path.read_text(), str(path))
    top = set(map(id, tree.body))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and DEFERRED.get(name) == node.name:
            top |= {id(n) for n in ast.walk(node)}
    here = name if is_pkg else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            if node.module:  # `from symgrad.derive import backprop` imports a module too
                targets += [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t == "symgrad" or t.startswith("symgrad."):
                out.append((t, node.lineno, id(node) in top))
    return out


def _graph():
    mods = {name: (path, is_pkg) for name, path, is_pkg in _modules()}
    edges = {}
    for name, (path, is_pkg) in mods.items():
        for t, line, top in _imports(name, path, is_pkg):
            while t not in mods and "." in t:  # a name imported from a module
                t = t.rpartition(".")[0]
            if t in mods and t != name:
                edges.setdefault(name, {}).setdefault(t, (line, top))
    return mods, edges


def _layer(mod):
    parts = mod.split(".")
    return LAYER[parts[1] if len(parts) > 1 else "__init__"]


def _package(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    for name, _, _ in _modules():
        assert _package(name) in LAYER, f"{name}: no layer (add it to LAYER in this test)"


def test_imports_flow_downward():
    _, edges = _graph()
    bad = []
    for a, targets in edges.items():
        for b, (line, top) in targets.items():
            if (a, b) in HOOKS:
                assert not top, f"{a} → {b} is the printing hook: it must stay inside a function"
                continue
            if _package(a) == _package(b):
                continue  # within a package: the cycle test below still applies
            if _layer(b) >= _layer(a):
                bad.append(f"{a}, line {line}: imports {b} (layer {_package(b)} is not below "
                           f"{_package(a)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    mods, edges = _graph()
    graph = {a: {b for b in t if (a, b) not in HOOKS} for a, t in edges.items()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(" → ".join(stack[stack.index(m):] + [m]))
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if not n.startswith(m + "."):  # a package re-exporting its own modules is no cycle
                visit(n)
        stack.pop()

    for m in sorted(mods):
        visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_function_level_imports_only_where_documented():
    mods, _ = _graph()
    found = []
    for name, (path, is_pkg) in mods.items():
        for t, line, top in _imports(name, path, is_pkg):
            if not top and not any(name == a and t.startswith(b) for a, b in HOOKS):
                found.append(f"{name}, line {line}: imports {t} inside a function")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("bad", ["core", "graph"])
def test_the_checker_sees_an_upward_import(bad, tmp_path, monkeypatch):
    """The checks above can fail: a module of a low layer importing the facade is caught."""
    monkeypatch.setattr(pathlib.Path, "read_text", _with_upward_import(bad))
    _, edges = _graph()
    victim = f"symgrad.{bad}"
    assert "symgrad.network" in edges.get(victim, {})
    with pytest.raises(AssertionError, match="is not below"):
        test_imports_flow_downward()


def test_the_checker_sees_a_function_level_import(monkeypatch):
    """An import inside any other function of the CLI is still reported."""
    original = pathlib.Path.read_text

    def read_text(self, *a, **k):
        text = original(self, *a, **k)
        if self == PKG / "cli.py":
            text += "\n\ndef _late():\n    from symgrad.network import mlp\n"
        return text
    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    with pytest.raises(AssertionError, match="cli, line .*: imports symgrad.network inside"):
        test_function_level_imports_only_where_documented()


def _with_upward_import(pkg):
    original = pathlib.Path.read_text

    def read_text(self, *a, **k):
        text = original(self, *a, **k)
        if self == PKG / pkg / "__init__.py":
            text += "\nfrom symgrad.network import Network\n"
        return text
    return read_text
