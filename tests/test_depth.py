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


def _from_deep_stack(frames, f):
    return f() if frames == 0 else _from_deep_stack(frames - 1, f)


def test_the_deepest_supported_net_works_from_a_deep_caller():
    """256 layers (512 nodes; the limit is 513) derive, print and compile with 300 frames of the
    caller's own below: 250 layers were a RecursionError (hashing the gradient)."""
    from symgrad.graph.network import MAX_DEPTH
    net = deep(256)
    assert net.depth == 512 <= MAX_DEPTH
    ds = _from_deep_stack(300, net.derive_all)
    assert ds[0].meta["where"][1][-1][0].name == "G_z1"
    _from_deep_stack(300, lambda: [d.to_dict() for d in ds])
    _from_deep_stack(300, lambda: [d.to_text() for d in ds[:4]])
    grads = _from_deep_stack(300, net.gradients)
    assert set(grads) == set(net.parameters)
    kernel = _from_deep_stack(300, net.compile)
    params = net.init_params(seed=0)
    loss, g = kernel(params, [[1.0, 2.0]], [[0.5, 0.5]])
    assert g["W1"].shape == (2, 2)


@pytest.mark.parametrize("call", ["derive_all", "derive", "gradients", "compile", "backprop"])
def test_past_the_supported_depth_one_value_error_at_once(call):
    net = deep(301)
    with pytest.raises(ValueError, match=r"^the network is 602 nodes deep \(its longest path to "
                                         r"yhat\); symgrad derives networks of up to 513, a "
                                         r"256-layer MLP") as e:
        net.derive("W1") if call == "derive" else getattr(net, call)()
    assert "\n" not in str(e.value)


def test_past_the_supported_depth_the_cli_says_one_line():
    r = CliRunner().invoke(cli, ["derive", "-".join(["2"] * 302), "--format", "json"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "symgrad: error: the network is 602 nodes deep (its longest path to yhat); symgrad derives "
        "networks of up to 513, a 256-layer MLP (deeper ones pass Python's recursion limit in SymPy)"]


def test_depth_counts_the_longest_path():
    net = sg.Network()
    h = net.input("x", 2)
    a = net.act(net.dense(h, 2), "relu")
    h = net.add(a, h)  # the skip is shorter: the path through the dense layer counts
    net.set_loss(net.dense(h, 1), "mse")
    assert net.depth == 5  # x, dense, act, add, dense
    assert deep(3).depth == 6 and deep(3, output="sigmoid", loss="bce").depth == 7


def _residual(blocks, gated=False):
    net = sg.Network()
    h = net.dense(net.input("x", 3), 3)
    for _ in range(blocks):
        a = net.act(net.dense(h, 3), "tanh")
        if gated:
            a = net.mul(a, net.act(net.dense(h, 3), "sigmoid"))
        h = net.add(a, h)
    net.set_loss(net.dense(h, 1), "mse")
    return net


@pytest.mark.parametrize("gated", [False, True])
def test_residual_stacks_are_linear_in_depth(gated):
    """Each residual (or gated) block doubled the paths from a parameter to the loss, and every
    path was written out: 14 blocks had 8192 and derive_all took 22 s. Past MAX_PATHS the chain
    stops at the first fork, whose g the backward pass sums over its consumers (defined in the
    same derivation), so the text grows linearly with the blocks."""
    from symgrad.derive.matrix import MAX_PATHS
    sizes = {}
    for blocks in (6, 12):  # 64 and 4096 paths
        ds = _residual(blocks, gated).derive_all()
        sizes[blocks] = sum(len(d.to_text()) for d in ds)
    assert sizes[12] < 2.5 * sizes[6]
    d = _residual(12, gated).derive("W1")
    assert len(d.meta["paths"]) <= MAX_PATHS
    text = d.to_text()
    assert "the paths are too many to list" in text and "g_z⁽¹⁾ᵀ = " in text  # (its handout's z⁽¹⁾)


def test_few_paths_are_still_written_out_one_by_one():
    d = _residual(2).derive("W1")  # 4 paths, as a student would write them
    assert len(d.meta["paths"]) == 4 and "path 4 of 4" in d.to_text()


def test_a_chain_stopped_at_a_fork_defines_every_g_it_reads():
    """Self-contained: every g the derivation of W1 mentions is defined in it, from the loss down
    (the --wrt W1 text alone must let a student follow the chain)."""
    import re
    text = _residual(6, gated=True).derive("W1").to_text()
    # (a name as the handout writes it: z⁽¹⁾, r⁽²⁾)
    used = set(re.findall(r"g_([A-Za-z]+[0-9₀-₉,⁽⁾⁰¹²³⁴⁵⁶⁷⁸⁹]*)", text)) - {"i"}  # "g_i xᵀ": words
    defined = set(re.findall(r"^\s*g_([A-Za-z]+[0-9₀-₉,⁽⁾⁰¹²³⁴⁵⁶⁷⁸⁹]*)ᵀ = ", text, flags=re.M))
    assert used and used <= defined, used - defined


def test_a_gated_residual_handout_is_linear_in_its_blocks():
    """The handout of 31 gated residual blocks took 8 s: SymPy's minus-sign test of a sum asks
    each term, and a matrix product answers by building −product with a doit over it, again at
    every level of the nesting. Counted, not timed: the negations made while printing the
    handout grow linearly with the blocks (5455 at 16 blocks against 687 at 8 before the fix)."""
    from unittest import mock
    from symgrad.handouts.build import handout
    calls = {}
    for blocks in (8, 16):
        net = _residual(blocks, gated=True)
        with mock.patch.object(sp.MatMul, "__neg__", autospec=True,
                               side_effect=lambda self: sp.MatMul(-1, self)) as neg:
            handout(net)
        calls[blocks] = neg.call_count
    assert calls[16] <= 2.5 * max(calls[8], 1)
