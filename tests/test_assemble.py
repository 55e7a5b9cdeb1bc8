"""Every partial derivative of a parameter, assembled into its gradient, and gradient descent
written out weight by weight (the XOR slides' last steps): the assembled matrix against central differences
of a forward pass written here in numpy (no engine), the check against the compiled kernel shown to
fail on a wrong matrix, the CLI and the handout's section."""
import numpy as np
import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.derivation import StepKind
from symgrad.core.evaluate import evaluate
from symgrad.compile.assembled import against_kernel
from symgrad.derive import assemble
from symgrad.handouts.build import build
from symgrad.handouts.render import render

XOR = dict(hidden="relu", output="identity", loss="mse")
ACTS = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "identity": lambda z: z}


def _loss(sizes, hidden, output, loss, params, x, y, penalty=0.0):
    """One example's ℓ of an mlp, in numpy, written here (the engines' route is not used)."""
    h, L = x, len(sizes) - 1
    for k in range(1, L + 1):
        z = params[f"W{k}"] @ h + params[f"b{k}"].ravel()
        h = ACTS[hidden](z) if k < L else z
    if output == "sigmoid":
        h = 1 / (1 + np.exp(-h))
    if output == "softmax":
        h = np.exp(h - h.max()) / np.exp(h - h.max()).sum()
    ell = {"mse": lambda: 0.5 * np.sum((h - y) ** 2),
           "bce": lambda: -np.sum(y * np.log(h) + (1 - y) * np.log(1 - h)),
           "cross_entropy": lambda: -np.sum(y * np.log(h))}[loss]()
    return ell


@pytest.mark.parametrize("sizes,hidden,output,loss", [
    ([2, 2, 1], "relu", "identity", "mse"),
    ([2, 3, 2], "tanh", "sigmoid", "bce"),
    ([3, 2, 3], "sigmoid", "softmax", "cross_entropy"),
])
def test_the_assembled_gradient_is_the_finite_difference_gradient(sizes, hidden, output, loss):
    net = sg.mlp(sizes, hidden=hidden, output=output, loss=loss)
    rng = np.random.default_rng(7)
    params = {p: rng.uniform(-1.5, 1.5, net.shapes[p]) for p in net.parameters}
    x = rng.uniform(-2, 2, sizes[0])
    y = rng.uniform(0.1, 0.9, sizes[-1])
    y = y / y.sum() if loss == "cross_entropy" else y
    for p in net.parameters:
        d = assemble.assembled(net, p, agree=against_kernel)
        S = d.meta["scalar"]
        env = {s: v for q, M in S.params.items() for s, v in zip(M, params[q].ravel())}
        env.update(zip(S.inputs["x"], x))
        env.update(zip(S.target, y))
        mine = np.array([[evaluate(S.explicit(e), env).real for e in row]
                         for row in d.result.tolist()])
        fd = np.zeros(net.shapes[p])
        for idx in np.ndindex(*net.shapes[p]):
            for sign in (1, -1):
                q = {k: v.copy() for k, v in params.items()}
                q[p][idx] += sign * 1e-6
                fd[idx] += sign * _loss(sizes, hidden, output, loss, q, x, y) / 2e-6
        assert mine.shape == net.shapes[p]
        assert np.allclose(mine, fd, rtol=1e-5, atol=1e-7), (p, mine, fd)
        assert d.meta["checked"].startswith("checked against the matrix level's gradient, evaluated")


def test_xor_w1_nine_partials_and_the_matrix_level():
    net = sg.mlp([2, 2, 1], **XOR)
    d = net.derive("W1", level="element")
    partials = [s for s in d.steps if s.rule is StepKind.PARTIAL]
    assert [str(s.lhs) for s in partials] == ["∂ℓ/∂w1", "∂ℓ/∂w2", "∂ℓ/∂w3", "∂ℓ/∂w4"]
    laid = next(s for s in d.steps if s.rule is StepKind.UNVECTORIZE)
    assert laid.rhs.shape == (2, 2) and str(laid.lhs) == "∇_W1 ℓ"
    # each entry is its own element-level derivation's result
    for s, w in zip(partials, ["w1", "w2", "w3", "w4"]):
        own = net.derive(w, level="element")
        assert d.result[partials.index(s)] == own.result
    agree = d.steps[-1]
    assert agree.rule is StepKind.AGREE
    m = net.derive("W1")  # the matrix level's ∇_W1 ℓ = g xᵀ, before the batch step
    assert agree.rhs == next(s.rhs for s in reversed(m.steps) if s.lhs == laid.lhs)
    assert str(agree.rhs) == "g_z1*x.T"
    # every parameter's assembly, then the loop: 9 scalar updates and 4 matrix ones
    ds = net.derive_all(level="element")
    assert len(ds) == 5
    ups = [s for s in ds[-1].steps if s.rule is StepKind.UPDATE]
    assert len(ups) == 13 and sum(1 for s in ups if not s.shapes) == 9
    assert "w₁ ← w₁ − ε ∂f/∂w₁" in ds[-1].to_text()
    assert r"w_{1} &\leftarrow w_{1} - \epsilon \, \frac{\partial f}{\partial w_{1}}" in \
        ds[-1].to_latex()


def test_a_wrong_assembled_matrix_fails_the_kernel_check():
    net = sg.mlp([2, 2, 1], **XOR)
    S = assemble.scalarize(net)
    M = S.params["W1"]
    right = [S.explicit(net.derive(w.name, level="element").result) for w in M]
    assert against_kernel(net, S, "W1", M, right)
    swapped = [right[1], right[0], right[2], right[3]]  # two entries exchanged
    with pytest.raises(ArithmeticError, match="disagrees with the matrix level"):
        against_kernel(net, S, "W1", M, swapped)


def test_the_notes_scalar_b1_stays_a_scalar_and_w1_a_parameter():
    net = sg.mlp([2, 2, 1], **XOR)
    assert not assemble.names_parameter(net, "b1")  # the notes' b1: the first hidden bias
    assert assemble.names_parameter(net, "W1")
    d = net.derive("b1", level="element")
    assert str(d.meta["weight"]) == "b1" and d.title.startswith("∂ℓ/∂b1, unit by unit")
    with pytest.raises(ValueError, match="over the 64 written out one by one"):
        assemble.assembled(sg.mlp([9, 8, 1], **XOR), "W1")


def test_cli_every_partial_then_gradient_descent():
    r = CliRunner().invoke(cli, ["derive", "2-2-1", "--level", "element"])
    assert r.exit_code == 0, r.output
    for part in ("∇_W⁽¹⁾ ℓ", "∇_b⁽¹⁾ ℓ", "∇_W⁽²⁾ ℓ", "∇_b⁽²⁾ ℓ", "Gradient descent, weight by weight",
                 "b₃ ← b₃", "W⁽¹⁾ ← W⁽¹⁾"):
        assert part in r.output
    r = CliRunner().invoke(cli, ["derive", "2-2-1", "--level", "element", "--wrt", "W1",
                                 "--of", "output"])
    assert r.exit_code == 0 and "∇_W⁽¹⁾ ŷ" in r.output and "the matrix level" not in r.output
    r = CliRunner().invoke(cli, ["derive", "2-2-1", "--level", "element", "--steps", "full"])
    assert r.exit_code == 2 and r.output.count("\n") <= 3 and "--steps full is for one weight" \
        in r.output


def test_the_xor_handout_assembles_and_writes_the_loop_out():
    net = sg.mlp([2, 2, 1], **XOR)
    doc = build(net, level="both")
    sec = next(s for s in doc.sections if s.title.startswith("Every partial derivative"))
    algs = [b for k, b in sec.blocks if k == "algorithm"]
    assert len(algs) == 1 and algs[0][2] is None  # its own box, not Algorithm 6.4
    steps = [tex for kind, tex in algs[0][1] if kind == "step"]
    assert len(steps) == 9 and steps[0] == r"w_{1} \leftarrow w_{1} - \epsilon \, \partial f / " \
                                           r"\partial w_{1}"
    md = render(doc, "markdown")
    assert "**Algorithm**: Gradient descent, weight by weight" in md
    assert "**Algorithm 6.4** (derived): Forward and backward propagation" in md
    # a net too large to write out whole has no such section
    big = build(sg.mlp([4, 5, 3], **XOR), level="both")
    assert not any(s.title.startswith("Every partial") for s in big.sections)
