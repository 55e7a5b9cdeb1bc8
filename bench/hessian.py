"""Second derivatives in closed form against autodiff (issue 12): symgrad's compiled Hessians
against torch.func.hessian (and jax.hessian where installed), same data, ratios in one run.

    python bench/hessian.py            # 1 BLAS thread (set before numpy/torch load)

- the Hessian of xᵀAx at n = 256 and 2048: symgrad's A + Aᵀ against torch.func.hessian;
- one Newton step of L2 logistic regression at 8192 × 128: symgrad's f, ∇f and
  H = Xᵀ diag(σ(1 − σ)) X + P (then a solve) against torch.func.hessian of the same loss;
- one Newton step of L2 softmax regression at the digits' size (1797 × 65, 10 classes): symgrad's
  650 × 650 H = (Xᵀ diag(Y𝟏) ⊗ I) blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ) (X ⊗ I) + I applied block by
  block, against torch.func.hessian of the same loss.
Each timing is the best of several calls; the ratio is torch's time over symgrad's.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

import symgrad as sg  # noqa: E402


def best_of(fn, repeat=5, budget=20.0):
    fn()  # warm up (compilation, caches)
    times, start = [], time.perf_counter()
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget:
            break
    return min(times)


def main():
    try:
        import torch
        torch.set_num_threads(1)
        from torch.func import hessian as torch_hessian
    except ImportError:
        raise SystemExit("bench/hessian.py compares against torch: pip install torch")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
    except ImportError:
        jax = None
    rng = np.random.default_rng(0)
    rows = []

    quad = sg.hessian("x'*A*x", "x", vectors="x", matrices="A").compile()
    for n in (256, 2048):
        A, x = rng.normal(size=(n, n)), rng.normal(size=n)
        ours = best_of(lambda: quad(x=x, A=A))
        At, xt = torch.tensor(A), torch.tensor(x)
        theirs = best_of(lambda: torch_hessian(lambda v: v @ At @ v)(xt), repeat=3)
        H = quad(x=x, A=A)[2]
        err = float(np.max(np.abs(H - torch_hessian(lambda v: v @ At @ v)(xt).numpy())))
        row = [f"Hessian of xᵀAx, n = {n}", ours, theirs, err]
        if jax is not None:
            Aj = jax.numpy.asarray(A)
            hj = jax.jit(jax.hessian(lambda v: v @ Aj @ v))
            row.append(best_of(lambda: hj(jax.numpy.asarray(x)).block_until_ready()))
        rows.append(row)

    n, d = 8192, 128
    X = np.hstack([rng.normal(size=(n, d - 1)), np.ones((n, 1))])
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    P = np.eye(d)
    P[-1, -1] = 0.0
    w = rng.normal(size=d) * 0.1
    newton = sg.hessian("sum(log(1 + exp(-y .* (X*w)))) + 0.5*w'*P*w", "w",
                        vectors="w y", matrices="X", symmetric="P").compile()

    def ours_step():
        f, g, H = newton(X=X, y=y, w=w, P=P)
        return w - np.linalg.solve(H, g)

    Xt, yt, Pt, wt = (torch.tensor(a) for a in (X, y, P, w))
    loss = lambda v: torch.nn.functional.softplus(-yt * (Xt @ v)).sum() + 0.5 * v @ Pt @ v

    def torch_step():
        g = torch.func.grad(loss)(wt)
        H = torch_hessian(loss)(wt)
        return wt - torch.linalg.solve(H, g)

    err = float(np.max(np.abs(ours_step() - torch_step().numpy())))
    row = [f"Newton step, logistic {n} × {d}", best_of(ours_step), best_of(torch_step, 3), err]
    if jax is not None:
        jnp = jax.numpy
        Xj, yj, Pj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(P)
        jloss = lambda v: jnp.logaddexp(0.0, -yj * (Xj @ v)).sum() + 0.5 * v @ Pj @ v
        jstep = jax.jit(lambda v: v - jnp.linalg.solve(jax.hessian(jloss)(v), jax.grad(jloss)(v)))
        wj = jnp.asarray(w)
        row.append(best_of(lambda: jstep(wj).block_until_ready()))
    rows.append(row)

    # softmax regression on digits-sized data: the 650 × 650 Hessian by vec[W]
    n, d, k = 1797, 65, 10
    X = np.hstack([rng.normal(size=(n, d - 1)), np.ones((n, 1))])
    Y = np.eye(k)[rng.integers(0, k, n)]
    W = rng.normal(size=(d, k)) * 0.1
    soft = sg.hessian("-sum(Y .* log(softmax(X*W))) + 0.5*tr(W'*W)", "W",
                      matrices="X W Y").compile()

    def ours_soft():
        f, g, H = soft(X=X, Y=Y, W=W)
        return W - np.linalg.solve(H, g.ravel()).reshape(W.shape)

    Xt, Yt, Wt = (torch.tensor(a) for a in (X, Y, W))
    sloss = lambda V: -(Yt * torch.log_softmax(Xt @ V, dim=1)).sum() + 0.5 * (V * V).sum()

    def torch_soft():
        g = torch.func.grad(sloss)(Wt).reshape(-1)
        H = torch_hessian(sloss)(Wt).reshape(d * k, d * k)
        return Wt - torch.linalg.solve(H, g).reshape(d, k)

    err = float(np.max(np.abs(ours_soft() - torch_soft().numpy())))
    row = [f"Newton step, softmax {n} × {d}, k = {k}", best_of(ours_soft), best_of(torch_soft, 3),
           err]
    if jax is not None:
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        jsl = lambda V: -(Yj * jax.nn.log_softmax(Xj @ V, axis=1)).sum() + 0.5 * (V * V).sum()
        jsoft = jax.jit(lambda V: V - jnp.linalg.solve(
            jax.hessian(jsl)(V).reshape(d * k, d * k), jax.grad(jsl)(V).reshape(-1)).reshape(d, k))
        Wj = jnp.asarray(W)
        row.append(best_of(lambda: jsoft(Wj).block_until_ready()))
    rows.append(row)

    print(f"1 BLAS thread; load average {os.getloadavg()[0]:.2f}")
    print(f"{'workload':44} {'symgrad':>10} {'torch.func':>11} {'ratio':>7} {'max |diff|':>11}")
    for name, ours, theirs, err, *rest in rows:
        print(f"{name:44} {ours * 1e3:8.2f}ms {theirs * 1e3:9.2f}ms {theirs / ours:6.1f}× "
              f"{err:11.1e}" + (f"  jax.jit(jax.hessian) {rest[0] * 1e3:.2f}ms "
                                f"({rest[0] / ours:.1f}×)" if rest else ""))


if __name__ == "__main__":
    main()
