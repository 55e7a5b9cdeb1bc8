"""Fuzzing in the suite (issue 10, item 5): hypothesis over the expression grammar and over network
declarations, names included. Each example must end in a result or a ParseError/ValueError —
never another exception — within a per-example budget (hypothesis' deadline, 5 s against ~0.1 s
typical: it catches blow-ups, which are exponential, not noise). Results are checked too: a
Jacobian against sympy.diff at a point, a network's compiled gradient against finite differences.
More examples: ``FUZZ_EXAMPLES=500 pytest tests/test_fuzz.py`` (60 by default, about 2 s)."""
import math
import os
from datetime import timedelta

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, given, settings, strategies as st

import symgrad as sg
from symgrad.core.parse import ParseError, parse
from symgrad.core.primitives import FUNCTIONS
from symgrad.derive import calculus

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
BUDGET = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5),
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- the expression grammar -------------------------------------------------------------------------
NAMES = ["x", "y", "z", "x1", "x2", "w", "beta", "lambda", "E", "I", "N", "S", "Q", "__import__",
         "os", "eval", "n", "step", "alpha_1", "t_0"]
NUMBERS = ["0", "1", "2", "3", "0.5", "1e-3", "2.5E+4", "10", "1e5000", "123456789012345678901234",
           ".5", "7e400"]
FUNCS = sorted(FUNCTIONS)
BINARY = ["+", "-", "*", "/", "^", "**"]
JUNK = ["", "", "", "", "(", ")", ",", "@", "#", "!", "x y", "..", "*-", "^-", "`", ";", "٢", "\n"]


def expressions():
    leaf = st.one_of(st.sampled_from(NAMES), st.sampled_from(NUMBERS), st.just("pi"),
                     st.just("e"))

    def grow(inner):
        call = st.builds(lambda f, args: f"{f}({', '.join(args)})", st.sampled_from(FUNCS),
                         st.lists(inner, min_size=1, max_size=3))
        binop = st.builds(lambda a, op, b: f"({a}) {op} {b}", inner, st.sampled_from(BINARY), inner)
        neg = st.builds(lambda a: f"-{a}", inner)
        return st.one_of(call, binop, neg)
    expr = st.recursive(leaf, grow, max_leaves=12)
    # sometimes a junk fragment spliced in at a random place: the parser must refuse it cleanly
    return st.builds(lambda e, j, k: e[:k % (len(e) + 1)] + j + e[k % (len(e) + 1):], expr,
                     st.sampled_from(JUNK), st.integers(0, 200))


def _value(e, env):
    try:
        v = complex(sp.sympify(e, strict=True).xreplace(env).evalf(30))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return v if all(math.isfinite(p) for p in (v.real, v.imag)) and abs(v) < 1e50 else None


@BUDGET
@given(expressions())
def test_any_text_parses_or_says_why_then_differentiates_and_prints(text):
    try:
        f = parse(text)
    except ParseError:
        return
    F = f if isinstance(f, sp.MatrixBase) else sp.Matrix([f])
    xs = sorted(F.free_symbols, key=lambda s: s.name)[:3]
    if not xs:
        return
    try:
        d = calculus.derive_jacobian(F, xs)
        d.to_text(), d.to_latex(), d.to_dict()
    except ValueError:  # e.g. a derived number past the printable digits: one clear line
        return
    env = {x: sp.Float(0.3 + 0.17 * i, 30) for i, x in enumerate(xs)}
    for i in range(F.rows):  # the Jacobian against sympy.diff, at one point where both are finite
        for j, x in enumerate(xs):
            ours, ref = _value(d.result[i, j], env), _value(sp.diff(F[i], x), env)
            if ours is not None and ref is not None:
                assert abs(ours - ref) <= 1e-9 * (1 + abs(ref)), (text, x)


# -- network declarations ----------------------------------------------------------------------------
NODE_NAMES = ["h", "z", "y", "yhat", "w3", "W1", "b1", "g_z1", "x", "x1", "n", "np", "params",
              "θ", "a b", "[a](javascript:alert(3))", "%", "δ_1", "alpha", "lambda", "h1_2", ""]
HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "x/(1 + abs(x))",
          "x^2", "exp(x)", "log(x)", "max(x, 0.1*x)", "bogus", "y + 1"]
HEADS = [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"),
         ("identity", "(yhat - y)^4"), ("identity", "abs(yhat - y)"), ("softmax", "mse"),
         ("identity", "bce"), ("sigmoid", "yhat + z")]


@st.composite
def networks(draw):
    """A declaration as a user writes it: dims, activations, a head and names, any of them bad."""
    dims = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    hidden = draw(st.sampled_from(HIDDEN))
    out, loss = draw(st.sampled_from(HEADS))
    names = draw(st.lists(st.sampled_from(NODE_NAMES), min_size=8, max_size=8,
                          unique=draw(st.integers(0, 4)) > 0))  # a clash now and then
    penalty = draw(st.sampled_from([0, 0, 0, 0.01, "1/100", 0, 0, -1, float("inf")]))
    return dims, hidden, out, loss, names, penalty


def _declare(dims, hidden, out, loss, names, penalty):
    it = iter(names)
    net = sg.Network()
    h = net.input(next(it) or "x", dims[0])
    for k, d in enumerate(dims[1:]):
        z = net.dense(h, d, name=next(it) or None)
        last = k == len(dims) - 2
        h = net.act(z, out if last else hidden, name=next(it) or None) \
            if not (last and out == "identity") else z
    return net.set_loss(h, loss, penalty=penalty)


@BUDGET
@given(networks())
def test_any_network_declaration_derives_compiles_and_checks_or_says_why(decl):
    try:
        net = _declare(*decl)
        net.derive_all()
        kernel = net.compile()
    except ValueError:
        return
    rng = np.random.default_rng(0)
    params = net.init_params(seed=1)
    n, d_in, d_out = 3, decl[0][0], decl[0][-1]
    X = rng.normal(size=(n, d_in))
    Y = (rng.integers(0, d_out, size=n) if net.loss.labels
         else rng.uniform(0.1, 0.9, size=(n, d_out)))
    try:
        loss, grads = kernel(params, X, Y)
    except ValueError:
        return
    if not math.isfinite(loss):
        return  # e.g. log of a negative activation: reported by train, not a kernel's business
    # one entry of each gradient against a central difference of the kernel's own loss
    for p, g in grads.items():
        if not np.all(np.isfinite(g)):
            continue
        idx = tuple(0 for _ in g.shape)
        h = 1e-6
        up, down = ({**params, p: params[p].copy()} for _ in range(2))
        up[p][idx] += h
        down[p][idx] -= h
        fd = (kernel(up, X, Y)[0] - kernel(down, X, Y)[0]) / (2 * h)
        kinked = any(a in decl[1] for a in ("relu", "abs", "max")) or "abs" in decl[3]
        if not kinked:
            assert abs(fd - g[idx]) <= 1e-4 * (1 + abs(fd)), (decl, p)
