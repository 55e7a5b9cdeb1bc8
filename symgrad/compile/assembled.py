"""The check of an assembled gradient (:func:`symgrad.derive.assemble.assembled`) against the
compiled matrix level: the kernel's gradient on a batch of one example is that example's ∇ℓ, a
route that never sees the scalars the element level derived.

Where it sits: compile, above derive; the facade and the handouts hand :func:`against_kernel` to
``assembled`` as its ``agree``.
"""
from __future__ import annotations

import numpy as np

from symgrad.compile.kernel import compile_network
from symgrad.compile.spec import init_params
from symgrad.core.evaluate import evaluate


def against_kernel(net, S, param, M, explicit, points: int = 3) -> str:
    """The assembled gradient of one example against the compiled kernel's on a batch of that one
    example (its mean loss is the example's ℓ): the matrix level's program, a route that never
    sees the scalars. "" where the kernel's batch is not one example's ℓ (sequences, several
    losses, tokens): the per-entry checks against sympy.diff stand alone there."""
    if S.positions is not None or net.several_losses or S.tokens or len(S.inputs) != 1:
        return ""
    (xs,) = S.inputs.values()
    kernel, init = compile_network(net), init_params(net)  # (biases (k,), weights W's shape)
    rng = np.random.default_rng(1)
    for _ in range(points):
        params = {p: rng.uniform(-1.5, 1.5, np.shape(v)) for p, v in init.items()}
        x, y = rng.uniform(-2, 2, len(xs)), rng.uniform(0.1, 0.9, len(S.target))
        if net.losses[0].loss.name == "cross_entropy":  # (its targets are distributions)
            y = y / y.sum()
        env = {s: float(v) for p, Mp in S.params.items() for s, v in zip(Mp, params[p].ravel())}
        env.update({s: float(v) for s, v in zip(xs, x)})
        env.update({s: float(v) for s, v in zip(S.target, y)})
        mine = np.array([evaluate(e, env).real for e in explicit]).reshape(net.shapes[param])
        _, grads = kernel(params, x[None, :], y[None, :])
        theirs = np.asarray(grads[param], dtype=float).reshape(net.shapes[param])
        if net.penalty != 0 and net.is_weight(param):  # the kernel's is ∇J = ∇ℓ + λW
            theirs = theirs - float(net.penalty) * params[param].reshape(net.shapes[param])
        if not np.allclose(mine, theirs, rtol=1e-9, atol=1e-12):
            raise ArithmeticError(f"the assembled ∇{param} disagrees with the matrix level's "
                                  f"compiled gradient: a bug")
    return f"checked against the matrix level's gradient, evaluated at {points} random points"
