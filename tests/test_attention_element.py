"""Attention at the element level (issue 11): a network with attention is written out at every
position of one sequence, s_tτ = q_t · k_τ/√d_k, a_tτ = exp(s_tτ)/Σ_σ exp(s_tσ) over the keys
position t sees, o_t = Σ_τ a_tτ v_τ. Its gradients, entry by entry, equal three other routes at
random points: the matrix level's batch program run in SymPy (as ``backprop.evaluate``), the compiled
numpy kernel, and central differences of the kernel's loss; single-head ``attention``, two heads of
``self_attention``, causal or not, with a residual, layer_norm, a softmax head and token
embeddings. Then the printed derivation (text, LaTeX, JSON), the handout and the command line,
and the one-line refusal past the size limit."""
import re
import shutil
import time

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.evaluate import evaluate
from symgrad.core.matexpr import N, to_explicit
from symgrad.core.primitives import at_zero
from symgrad.derive.backprop import program
from symgrad.derive.element import UNIT_LIMIT, scalarize
from symgrad.handouts.build import handout

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                               reason="pdflatex not installed (.ci/run installs it)")


def sdpa(T, causal, head="mse", d=2):
    """x → q, k, v (dense) → attention → dense head."""
    net = sg.Network()
    x = net.input("x", shape=(T, d))
    q, k, v = (net.dense(x, 2, name=r) for r in "qkv")
    o = net.attention(q, k, v, causal=causal)
    if head == "mse":
        return net.set_loss(net.dense(o, 1), "mse")
    return net.set_loss(net.act(net.dense(o, 2), "softmax"), "cross_entropy")


def block(T, heads, causal, norm=False, E=2):
    """x + self_attention(layer_norm(x) or x), mse on the sum."""
    net = sg.Network()
    x = net.input("x", shape=(T, E))
    h = net.layer_norm(x) if norm else x
    return net.set_loss(net.add(x, net.self_attention(h, heads, causal=causal)), "mse")


def tokens(T, causal):
    """Embedded tokens + one causal head, a residual and a softmax over 2 classes."""
    net = sg.Network()
    e = net.embedding(net.input("tok", shape=(T,), tokens=3), 2)
    a = net.self_attention(e, 1, causal=causal)
    return net.set_loss(net.act(net.dense(net.add(e, a), 2), "softmax"), "cross_entropy")


NETS = {  # name → (network, every scalar parameter or a sample)
    "one head, causal": (lambda: sdpa(2, True), "all"),
    "one head, T = 3, softmax head": (lambda: sdpa(3, False, "cross_entropy"), "sample"),
    "two heads, residual": (lambda: block(2, 2, False), "sample"),
    "two heads, residual, causal": (lambda: block(2, 2, True), "sample"),
    "layer norm, one head, residual": (lambda: block(2, 1, False, norm=True), "sample"),
    "layer norm, two heads, residual, causal": (lambda: block(2, 2, True, norm=True), "sample"),
    "tokens, causal": (lambda: tokens(2, True), "sample"),
}


def data(net, rng):
    """One sequence: X (1, T, d) or tokens (1, T), and Y (1, T, k) or labels (1, T)."""
    (x,) = net.inputs
    T = net.positions
    k = net.nodes[net.output_node].dim
    V = net.tokens(x)
    X = rng.integers(0, V, size=(1, T)) if V else rng.normal(size=(1, T, net.nodes[x].dim))
    Y = rng.integers(0, k, size=(1, T)) if net.loss.name == "cross_entropy" else \
        rng.normal(size=(1, T, k))
    return X, Y


def targets(net, Y):
    """Y as the element level's targets y_t,k, T × k (labels one-hot)."""
    k = net.nodes[net.output_node].dim
    return np.eye(k)[Y[0]] if net.loss.name == "cross_entropy" else Y[0]


def element_gradient(net, name, params, X, Y):
    """∂ℓ/∂(name) of the element level, its written-out form evaluated at the point."""
    d = net.derive(name, level="element")
    assert d.meta["checked"]  # the engine's own check (forward accumulation, at 3 points)
    S = d.meta["scalar"]
    (x,) = net.inputs
    env = {s: v for s, v in zip(S.inputs[x], np.asarray(X[0]).reshape(-1))}
    env.update({s: v for s, v in zip(S.target, targets(net, Y).reshape(-1))})
    for p, M in S.params.items():
        env.update({s: v for s, v in zip(M, params[p].reshape(-1))})
    if net.tokens(x):
        env = {s: int(v) if s in S.inputs[x] else v for s, v in env.items()}
    value = evaluate(d.meta["explicit"], env)
    assert value.imag == 0 and np.isfinite(value.real), name
    return value.real


def matrix_level(net, params, X, Y):
    """The matrix level's batch program for the one sequence (T rows), run in SymPy floats, as
    ``backprop.evaluate`` runs it, but each value evaluated to floats as it is made: kept exact,
    the scale 1/√2 left every later value a growing tree of exp(…√2…) (10 minutes at T = 3)."""
    prog, T, (x,) = program(net), net.positions, net.inputs
    Xr = X[0].reshape(-1, 1) if net.tokens(x) else X[0]  # (tokens: one a row)
    vals = {v.sym: sp.ImmutableMatrix(Xr) for v in prog.inputs}
    vals[prog.target.sym] = sp.ImmutableMatrix(targets(net, Y).reshape(T, -1))
    for v in prog.params:
        vals[v.sym] = sp.ImmutableMatrix(params[v.of].reshape(net.shapes[v.of]))
    out = {}
    for e in prog.eqns:
        value = at_zero(to_explicit(e.rhs.xreplace(vals).xreplace({N: T})),
                        net.relu_grad_at_zero).evalf(30)
        vals[e.out.sym] = out[e.out.label.name] = value
    return {p: np.array(out["d" + p], dtype=float).reshape(params[p].shape)
            for p in net.parameters}


def central(kernel, params, X, Y, p, i, eps=1e-6):
    hi, lo = dict(params), dict(params)
    hi[p], lo[p] = params[p].copy(), params[p].copy()
    hi[p][i] += eps
    lo[p][i] -= eps
    return (kernel(hi, X, Y)[0] - kernel(lo, X, Y)[0]) / (2 * eps)


@pytest.mark.parametrize("which", list(NETS))
def test_element_level_equals_matrix_level_kernel_and_central_differences(which):
    make, entries = NETS[which]
    net = make()
    S = scalarize(net)
    rng = np.random.default_rng(len(which))
    params = {p: v + 0.3 * rng.normal(size=v.shape) for p, v in net.init_params(1).items()}
    X, Y = data(net, rng)
    kernel = net.compile(scalar=False)
    _, grads = kernel(params, X, Y)
    matrix = matrix_level(net, params, X, Y)
    checked = 0
    for p, M in S.params.items():
        idx = list(np.ndindex(params[p].shape))
        chosen = range(len(idx)) if entries == "all" else sorted({0, len(idx) - 1})
        for j in chosen:
            i, name = idx[j], M[j].name
            ours = element_gradient(net, name, params, X, Y)
            scale = 1 + abs(grads[p][i])
            assert abs(ours - grads[p][i]) < 1e-9 * scale, (which, p, i, name, ours, grads[p][i])
            assert abs(ours - matrix[p][i]) < 1e-9 * scale, (which, p, i, name)
            assert abs(ours - central(kernel, params, X, Y, p, i)) < 1e-6 * scale, (which, name)
            checked += 1
    assert checked >= 2 * len(S.params) - sum(1 for M in S.params.values() if len(M) == 1)


def test_units_at_every_position_and_the_causal_mask():
    net = sdpa(3, True)
    S = scalarize(net)
    assert S.positions == 3
    q, s, a, o = (S.units[n] for n in ("q", "s4", "a5", "o6"))
    assert q.shape == (3, 2) and str(q[1, 0]) == "q_2,1" and str(S.inputs["x"][2, 1]) == "x_3,2"
    assert s.shape == a.shape == (3, 3) and o.shape == (3, 2)
    for t in range(3):
        for tau in range(3):
            if tau > t:  # a hidden key: no unit, a score −∞ and a weight 0
                assert s[t, tau] == -sp.oo and a[t, tau] == 0
            elif t > 0:
                assert str(a[t, tau]) == f"a5_{t + 1},{tau + 1}"
    assert a[0, 0] == 1  # position 1 sees key 1 alone: its weight is the number 1
    row = S.defs[a[2, 1]]  # exp(s_32) over the three keys position 3 sees
    assert row == sp.exp(s[2, 1]) / sum(sp.exp(s[2, j]) for j in range(3))
    assert S.defs[s[1, 0]] == (q[1, 0] * S.units["k"][0, 0] + q[1, 1] * S.units["k"][0, 1]) / \
        sp.sqrt(2)
    assert sp.expand(S.defs[o[1, 0]] - (a[1, 0] * S.units["v"][0, 0] + a[1, 1] *
                                        S.units["v"][1, 0])) == 0
    assert S.target.shape == (3, 1)
    assert sp.expand(S.loss - sum((S.units["z4"][t] - S.target[t]) ** 2 for t in range(3)) / 6) \
        == 0  # the mean over the positions of ½(ŷ_t − y_t)²
    unmasked = scalarize(sdpa(3, False))
    assert all(isinstance(u, sp.Symbol) for u in unmasked.units["a5"])


def test_position_wise_sequences_stay_at_one_position():
    net = sg.Network()
    net.set_loss(net.dense(net.act(net.dense(net.input("x", shape=(6, 2)), 2), "tanh"), 1),
                 "mse")
    S = scalarize(net)
    assert S.positions is None and S.units["x"].shape == (2, 1)


def test_printed_derivation_text_latex_and_json():
    net = sdpa(2, True)
    d = net.derive("w1", level="element")
    text = d.to_text()
    assert text.startswith("∂ℓ/∂w₁, unit by unit, over the T = 2 positions of one sequence "
                           "(attention reads every position)")
    for piece in ("s_tτ = q_t · k_τ/√d_k", "a_tτ = exp(s_tτ)/Σ_σ exp(s_tσ)",
                  "position 1 sees key 1 alone and a_1,1 = 1",
                  "the loss of one sequence: the mean of its T = 2 positions' losses",
                  "δ_s4_2,1 = ∂ℓ/∂s4_2,1: s4_2,1 feeds a5_2,1, a5_2,2",
                  "w₁ is used by q_1,1, q_2,1: the chain rule sums over its uses",
                  "substitute the δ's from the backward pass",
                  "the values of the forward pass",
                  "the mean loss over the n sequences"):
        assert piece in text, piece
    tex = sg.to_latex(d)
    for piece in (r"s_{t\tau }", r"h_{t,i}", r"\delta_{s_{2,1}^{(4)}}", r"a_{2,1}^{(5)}",
                  r"x_{2,1}", r"\frac{\partial \ell}{\partial w_{1}}"):
        assert piece in tex, piece
    assert not re.search(r"[a-z]\d*\\_\d", tex)  # no unit left as escaped text (s4\_2,1)
    record = d.to_dict()
    assert record["steps"][0]["lhs"] == "t" and "δ_q_2,1" in str(record)
    # a long result keeps its δ's, each defined in the backward pass above it
    long = block(2, 2, False, norm=True).derive("b1", level="element")  # the layer norm's gain
    last = [s for s in long.steps if s.rule.name != "BATCH"][-1]
    assert "the δ's those of the backward pass above" in last.why
    assert any(s.name.startswith("δ_") for s in long.result.free_symbols)
    # ∂ŷ/∂w at a single position with a single output
    one = sdpa(1, False).derive("w13", level="element", of="output")
    assert one.meta["checked"] and "∂z₄,₁/∂w₁₃, unit by unit, over the T = 1 position of" in one.to_text()


def test_refused_in_one_line_past_the_limit_and_at_once():
    net = block(8, 1, False)  # 24 parameters, but 240 units over its 8 positions
    start = time.perf_counter()
    with pytest.raises(ValueError) as e:
        net.derive("w1", level="element")
    assert time.perf_counter() - start < 1
    assert str(e.value) == ("this network is too large for the element level (attention writes "
                            f"every one of its T = 8 positions out: 240 units, the limit is "
                            f"{UNIT_LIMIT}); use level=\"matrix\", which derives any size")
    block(4, 2, False, norm=True).derive("b1", level="element")  # 144 units: derived


def test_handout_both_levels_and_one_left_out():
    doc = handout(block(2, 2, True, norm=True), level="both", fmt="markdown")
    assert "Unit by unit, for the entry" in doc
    assert "unit-by-unit view is left out" not in doc  # (an exercise may leave a section out)
    big = handout(block(8, 1, False), level="both")
    assert ("The unit-by-unit view is left out: written out at every one of its T = 8 "
            "positions, its loss is too long to derive one unit at a time") in big


@needs_tex
@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_handout_with_attention_unit_by_unit_compiles_without_overfull_boxes(fmt, tmp_path):
    from symgrad.handouts.pdf import compile_pdf
    tex = handout(block(2, 1, True), level="both", fmt=fmt)
    # (one head's weights are a, unit a_{2,1}: no longer a^{(5)}, the graph's node 5; issue 13)
    assert r"\delta_{" in tex and r"a_{2,1}" in tex and r"a_{2,1}^{(" not in tex
    pdf = compile_pdf(tex, tmp_path / f"attention-{fmt}.pdf", engine="pdflatex",
                      keep_failed=False, keep_log=True)
    log = pdf.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
    over = [float(m) for m in re.findall(r"Overfull \\[hv]box \((\d+(?:\.\d+)?)pt too", log)]
    assert [o for o in over if o > 2.0] == []


NET_FILE = """import symgrad as sg
net = sg.Network()
x = net.input("x", shape=({T}, 2))
net.set_loss(net.add(x, net.self_attention(net.layer_norm(x), 2, causal=True)), "mse")
"""


def test_command_line(tmp_path):
    small, big = tmp_path / "small.py", tmp_path / "big.py"
    small.write_text(NET_FILE.format(T=2))
    big.write_text(NET_FILE.format(T=9))
    run = CliRunner().invoke
    r = run(cli, ["derive", str(small), "--level", "element", "--wrt", "w1"])
    assert r.exit_code == 0 and "over the T = 2 positions of one sequence" in r.output
    r = run(cli, ["derive", str(small), "--level", "element", "--wrt", "Wq1_12", "--format",
                  "latex"])
    assert r.exit_code == 0 and r"\begin{aligned}" in r.output
    r = run(cli, ["derive", str(big), "--level", "element", "--wrt", "w1"])
    assert r.exit_code == 2 and "too large for the element level (attention writes every one " \
        "of its T = 9 positions out" in r.output and r.output.count("\n") == 1
    out = tmp_path / "h.md"
    r = run(cli, ["handout", str(small), "--level", "both", "-o", str(out)])
    assert r.exit_code == 0 and "Unit by unit" in out.read_text()
    r = run(cli, ["handout", str(big), "--level", "element", "-o", str(out)])
    assert r.exit_code == 0 and "left out" in out.read_text()
