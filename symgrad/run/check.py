"""Checking compiled gradients against central differences.

Where it sits: beside compile → train. :func:`gradcheck` evaluates a network's kernel (or a compiled
function's Jacobian) and compares it entry by entry with (f(θ + h) − f(θ − h)) / 2h, in float64.
It returns the largest relative error as a number that also carries a readable report.
"""
from __future__ import annotations

import numpy as np

from symgrad.compile.function import CompiledFunction, compile_function
from symgrad.compile.kernel import compile_network
from symgrad.compile.spec import init_params, param_shapes
from symgrad.graph.network import Graph


class GradCheck(float):
    """The largest relative error found (a float); ``.report`` says where, ``.errors`` per part."""

    def __new__(cls, value, errors, report):
        obj = super().__new__(cls, value)
        obj.errors, obj.report = errors, report
        return obj

    def __str__(self):
        return self.report

    def __repr__(self):
        return f"GradCheck({float(self):.3g})"


def _relative(analytic, numeric, floor):
    """‖a − n‖∞ / max(‖a‖∞, ‖n‖∞, floor): error relative to the gradient's scale."""
    diff = np.abs(analytic - numeric).max(initial=0.0)
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0), floor)
    return diff, diff / scale


def _data(net, n, rng):
    """Random examples: X an (n, d) array ((n, T, d) for sequences), or a dict of them for several
    inputs; Y to suit the loss."""
    def lead(node):  # (n, T, ·) for sequences; (n, ·) after a flatten of them
        return (n,) if node.positions is None else (n, node.positions)
    out = net.nodes[net.output_node]
    X = {i: rng.integers(0, net.tokens(i), lead(net.nodes[i])) if net.tokens(i) else  # below V
         rng.standard_normal((n,) + net.nodes[i].shape) for i in net.inputs}
    X = X[net.inputs[0]] if len(X) == 1 else X
    if net.several_losses:  # a dict {output: its targets}, one per term of the loss
        return X, {t.output: _targets(t.loss, net.nodes[t.output].dim,
                                      lead(net.nodes[t.output]), rng) for t in net.losses}
    return X, _targets(net.loss, out.dim, lead(out), rng)


def _targets(loss, dim, lead, rng):
    if loss.labels:
        return rng.integers(0, dim, lead)
    if loss.fused:  # a classification loss (bce): 0/1 targets
        return rng.integers(0, 2, lead + (dim,)).astype(float)
    return rng.standard_normal(lead + (dim,))


def check_network(net, params=None, X=None, Y=None, *, n=4, eps=1e-6, samples=200, seed=0,
                  floor=1e-8):
    rng = np.random.default_rng(seed)
    if params is None:  # random weights and nonzero biases, so every term is exercised
        params = {k: v + 0.1 * rng.standard_normal(v.shape)
                  for k, v in init_params(net, seed=seed).items()}
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    if X is None:
        X, Y = _data(net, n, rng)
    elif Y is None:
        raise ValueError("gradcheck: give Y along with X")
    kernel = compile_network(net)
    def f64(k, v):  # float64 data; tokens stay integers (the kernel refuses float tokens)
        return np.asarray(v) if net.tokens(k) else np.asarray(v, dtype=np.float64)
    X = ({k: f64(k, v) for k, v in X.items()} if isinstance(X, dict) else f64(net.inputs[0], X))
    loss, grads = kernel(params, X, Y)
    n = len(next(iter(X.values())) if isinstance(X, dict) else X)
    errors, lines = {}, [f"gradcheck of {net!r}, {n} examples, loss {float(loss):.6g}"]
    for p, shape in param_shapes(net).items():
        idx = list(np.ndindex(shape))
        if len(idx) > samples:
            idx = [idx[i] for i in rng.choice(len(idx), samples, replace=False)]
        numeric = np.empty(len(idx))
        for j, ix in enumerate(idx):
            saved = params[p][ix]
            h = eps * max(1.0, abs(saved))
            params[p][ix] = saved + h
            up = float(kernel(params, X, Y)[0])
            params[p][ix] = saved - h
            down = float(kernel(params, X, Y)[0])
            params[p][ix] = saved
            numeric[j] = (up - down) / (2 * h)
        analytic = np.array([grads[p][ix] for ix in idx])
        diff, rel = _relative(analytic, numeric, floor)
        errors[p] = rel
        lines.append(f"  {p} {shape}: {len(idx)} entries, max |analytic − numeric| {diff:.2e}, "
                     f"relative {rel:.2e}")
    worst = max(errors.values())
    lines.append(f"max relative error {worst:.2e}")
    return GradCheck(worst, errors, "\n".join(lines))


def check_function(fn, points=None, wrt=None, *, eps=1e-6, seed=0, floor=1e-8):
    if not isinstance(fn, CompiledFunction):
        fn = compile_function(fn, wrt)
    if fn.kind == "matrix":
        raise ValueError("gradcheck: a matrix-valued function has no Jacobian to check")
    k = len(fn.wrt)
    P = (np.random.default_rng(seed).standard_normal((5, k)) if points is None
         else np.asarray(points, dtype=np.float64))
    P = P.reshape(-1, k) if k > 1 or P.ndim != 1 else P.reshape(-1, 1)
    J = fn.jacobian(P)  # (m, outputs, k)
    numeric = np.empty_like(J)
    for j in range(k):
        h = eps * np.maximum(1.0, np.abs(P[:, j]))
        up, down = P.copy(), P.copy()
        up[:, j] += h
        down[:, j] -= h
        d = (fn(up) - fn(down)).reshape(len(P), -1)
        numeric[:, :, j] = d / h[:, None] / 2
    errors, lines = {}, [f"gradcheck of {fn.expr.T if fn.kind != 'scalar' else fn.expr[0]} "
                         f"at {len(P)} points"]
    for j, x in enumerate(fn.wrt):
        diff, rel = _relative(J[:, :, j], numeric[:, :, j], floor)
        errors[str(x)] = rel
        lines.append(f"  ∂/∂{x}: max |analytic − numeric| {diff:.2e}, relative {rel:.2e}")
    worst = max(errors.values()) if errors else 0.0
    lines.append(f"max relative error {worst:.2e}")
    return GradCheck(worst, errors, "\n".join(lines))


def gradcheck(target, *args, **kw) -> GradCheck:
    """The largest relative error of compiled gradients against central differences.

    ``gradcheck(net, params=None, X=None, Y=None, n=4, eps=1e-6, samples=200, seed=0)``: the kernel
    of a Network (random parameters and data unless given, X a dict {input name: array} for a net
    with several inputs; at most ``samples`` entries per parameter). ``gradcheck(f, points=None, wrt=None, eps=1e-6)``: the Jacobian of a
    CompiledFunction or of anything compile_function takes (then with ``wrt``), at the rows of
    ``points`` (five random points unless given). The result is a float (the error relative to
    each gradient's scale, largest over all parts) whose str() is a per-part report.
    """
    if isinstance(target, Graph):
        return check_network(target, *args, **kw)
    return check_function(target, *args, **kw)
