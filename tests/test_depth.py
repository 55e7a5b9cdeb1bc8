"""Deep networks: JSON linear in depth like text, and a depth past the supported one refused in
one line, never a RecursionError (issue 10, "bounded and honest under any input")."""
import json

import pytest
import sympy as sp
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.matexpr import substitute
from symgrad.printing import SympifyPrinter


def deep(layers: int, **kw):
    return sg.mlp([2] * (layers + 1), **kw)


def _json(layers: int) -> list:
    return [d.to_dict() for d in deep(layers).derive_all()]


def test_json_printing_does_no_work_per_level(monkeypatch):
    """SymPy's printer asked every nested MatMul for its sign by ``doit`` over its subtree (30
    layers took 21.7 s, 200 a RecursionError). Counted, not timed: the doit calls while printing
    do not grow with depth."""
    calls = {}
    original = sp.MatMul.doit

    def counting(self, **kw):
        calls["n"] = calls.get("n", 0) + 1
        return original(self, **kw)

    counts = []
    for layers in (10, 20):
        ds = deep(layers).derive_all()
        calls["n"] = 0
        monkeypatch.setattr(sp.MatMul, "doit", counting)
        [d.to_dict() for d in ds]
        monkeypatch.setattr(sp.MatMul, "doit", original)
        counts.append(calls["n"])
    assert counts[1] <= counts[0] + 2, counts  # before: 17916 calls at 20 layers


def test_json_size_is_linear_in_depth():
    small, large = (len(json.dumps(_json(n), ensure_ascii=False)) for n in (20, 40))
    assert large / small < 2.2, (small, large)
    # no entry grows with depth: each G is defined once, one layer deep
    longest = [max(len(s) for x in _json(n) for s in [x["result"]] + [w["rhs"] for w in x["where"]])
               for n in (20, 60)]  # names of two digits in both
    assert longest[0] == longest[1], longest


def test_json_result_and_where_rebuild_the_gradient():
    """``result`` in G's and each derivation's ``where`` (the G's it derived, in order; the rest
    were defined by an earlier one, as the text says) substitute back to the exact gradient; the
    strings are the printed ones."""
    net = deep(60)
    defs = {}
    for d, out in zip(net.derive_all(), _json(60)):
        result, where = d.meta["where"]
        assert out["result"] == SympifyPrinter().doprint(result)
        assert [w["lhs"] for w in out["where"]] == [str(lhs) for lhs, _ in where]
        for lhs, rhs in where:
            defs[lhs] = substitute(rhs, defs)
        assert substitute(result, defs) == d.result


def test_json_of_a_single_parameter_is_self_contained():
    out = json.loads(CliRunner().invoke(cli, ["derive", "2-2-2-2-1", "--wrt", "W1", "--format",
                                              "json"]).output)[0]
    assert out["result"] == "G_z1.T*X"
    assert [w["lhs"] for w in out["where"]] == ["G_yhat", "G_h3", "G_z3", "G_h2", "G_z2", "G_h1",
                                                 "G_z1"]
    assert out["where"][0]["rhs"] == "1/n*(Yhat - Y)"


def test_deep_json_from_the_cli():
    r = CliRunner().invoke(cli, ["derive", "-".join(["2"] * 201), "--format", "json"])
    assert r.exit_code == 0, r.output[-300:]
    out = json.loads(r.output)
    assert len(out) == 400 and out[0]["where"][-1]["lhs"] == "G_z1"
