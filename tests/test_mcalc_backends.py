"""Matrix-calculus results compiled for the array backends (issue 14): ``sg.grad(...).compile(
backend="jax" | "torch" | "cupy")`` through the backend registry's matrix printers. Every form of
tests/test_mcalc.py's lists (the Cookbook's gradients, Hessians, Jacobians, Jacobians through vec,
the softmax-regression Hessian's sandwich) agrees with the numpy function to 1e-12 in float64; JAX's
is also checked against jax.grad of its own value (an independent route) and under jax.jit; the
arrays keep their framework, dtype and device; bad arguments are one-line errors. Each framework's
tests are skipped, saying so, where it is not installed; CuPy's where there is no GPU."""
import numpy as np
import pytest

import symgrad as sg
from test_mcalc import COOKBOOK, HESSIANS, JACOBIANS, SOFTMAX_CE, _softmax_data, _spd

RNG = np.random.default_rng(11)

VEC = [  # tests/test_mcalc.py's Jacobians through vec, Hessians by a matrix, det of 2X, a sandwich
    ("vec-Wx", "derivative", "W*x", "W", dict(vectors="x", matrices="W"),
     lambda: dict(W=RNG.normal(size=(3, 4)), x=RNG.normal(size=4))),
    ("vec-AXB", "derivative", "A*X*B", "X", dict(matrices="A X B"),
     lambda: dict(A=RNG.normal(size=(2, 3)), X=RNG.normal(size=(3, 4)), B=RNG.normal(size=(4, 2)))),
    ("vec-inv", "derivative", "inv(X)", "X", dict(matrices="X"), lambda: dict(X=_spd(3))),
    ("vec-xy", "derivative", "x*y'", "x", dict(vectors="x y"),
     lambda: dict(x=RNG.normal(size=3), y=RNG.normal(size=2))),
    ("vec-sigmoid", "derivative", "sigmoid(W*x)", "W", dict(vectors="x", matrices="W"),
     lambda: dict(W=RNG.normal(size=(3, 4)), x=RNG.normal(size=4))),
    ("hess-X", "hessian", "tr(X'*A*X)", "X", dict(matrices="X A"),
     lambda: dict(X=RNG.normal(size=(3, 2)), A=RNG.normal(size=(3, 3)))),
    ("det2X", "grad", "det(2*X)", "X", dict(matrices="X"), lambda: dict(X=_spd(3))),
    ("softmax-hessian", "hessian", SOFTMAX_CE, "W", dict(matrices="X W Y"),
     lambda: dict(zip("XWY", _softmax_data()), lam=0.3)),
]
FORMS = ([(c[0], "grad", c[1], c[2], c[3], c[4]) for c in COOKBOOK]
         + [("hess-" + c[0], "hessian", c[1], c[2], c[3], c[4]) for c in HESSIANS]
         + [("jac-" + c[0], "derivative", c[1], c[2], c[3], c[4]) for c in JACOBIANS] + VEC)
DERIVE = {"grad": sg.grad, "hessian": sg.hessian, "derivative": sg.derivative}
_COMPILED = {}


def _framework(name):
    if name == "jax":
        jax = pytest.importorskip("jax", reason="JAX not installed: pip install 'symgrad[jax]'")
        jax.config.update("jax_enable_x64", True)
        return jax
    return pytest.importorskip("torch", reason="torch not installed: pip install torch (CPU)")


@pytest.fixture(params=["jax", "torch"])
def backend(request):
    _framework(request.param)
    return request.param


def _derivation(case):
    name, kind, f, wrt, decl, _ = case
    if name not in _COMPILED:
        _COMPILED[name] = DERIVE[kind](f, wrt, **decl)
    return _COMPILED[name]


def _host(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


# the softmax-regression Hessian takes 17 s to derive: slow (tests/test_mcalc.py derives it too)
SLOW = {"softmax-hessian"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0], marks=[pytest.mark.slow] * (c[0] in SLOW))
                                  for c in FORMS])
def test_every_form_agrees_with_numpy_in_float64(backend, case):
    d = _derivation(case)
    args = case[5]()
    want = d.compile()(**args)
    fn = d.compile(backend=backend)
    got = fn(**args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g).__module__.split(".")[0] in ("jax", "jaxlib", "torch"), type(g)
        assert str(g.dtype).endswith("float64")
        h = _host(g)
        assert h.shape == np.shape(w), (h.shape, np.shape(w))
        scale = max(np.abs(w).max(), 1e-300)
        assert np.abs(h - w).max() <= 1e-12 * scale, (case[0], np.abs(h - w).max() / scale)


@pytest.mark.parametrize("case", [c for c in FORMS if c[1] == "grad"],
                         ids=[c[0] for c in FORMS if c[1] == "grad"])
def test_jax_gradients_equal_jax_grad_of_the_compiled_value_under_jit(case):
    """An independent route: JAX's own autodiff of the compiled value, the whole call jitted
    (the function is pure: no in-place update, no value check on tracers)."""
    jax = _framework("jax")
    d = _derivation(case)
    wrt = case[3]
    args = {k: jax.numpy.asarray(v) for k, v in case[5]().items()}
    fn = d.compile(backend="jax")

    def value(w):
        return fn(**{**args, wrt: w})[0]
    auto = jax.jit(jax.grad(value))(args[wrt])
    ours = jax.jit(lambda w: fn(**{**args, wrt: w})[1])(args[wrt])
    assert np.abs(_host(ours) - _host(auto)).max() <= 1e-10 * max(np.abs(_host(auto)).max(), 1)


def test_torch_keeps_device_and_float32_and_agrees_with_autograd():
    torch = _framework("torch")
    d = sg.grad("sum(log(1 + exp(-y .* (X*w))))", "w", vectors="w y", matrices="X")
    fn = d.compile(backend="torch")
    X, w, y = RNG.normal(size=(6, 3)), RNG.normal(size=3), np.sign(RNG.normal(size=6))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        for dt in (torch.float32, torch.float64):
            t = {k: torch.as_tensor(v, dtype=dt, device=dev) for k, v in dict(X=X, y=y).items()}
            wt = torch.as_tensor(w, dtype=dt, device=dev).requires_grad_()
            f, g = fn(**t, w=wt)
            assert f.dim() == 0 and g.shape == (3,)
            assert {(a.dtype, a.device.type) for a in (f, g)} == {(dt, dev)}
            (auto,) = torch.autograd.grad(f, wt)  # torch's autodiff of the compiled value
            tol = 1e-12 if dt == torch.float64 else 1e-5
            assert (auto - g).abs().max() <= tol * auto.abs().max()
    # numpy float32 beside a float32 tensor stays float32; a float64 one makes both float64
    t32 = torch.as_tensor(X, dtype=torch.float32)
    assert fn(X=t32, w=w.astype(np.float32), y=y.astype(np.float32))[1].dtype == torch.float32
    assert fn(X=t32, w=w, y=y)[1].dtype == torch.float64


def test_jax_float32_stays_float32():
    jax = _framework("jax")
    fn = sg.grad("x'*A*x", "x", vectors="x", matrices="A").compile(backend="jax")
    f, g = fn(x=jax.numpy.ones(3, "float32"), A=jax.numpy.eye(3, dtype="float32"))
    assert f.dtype == np.float32 and g.dtype == np.float32 and float(f) == 3.0


@pytest.mark.parametrize("args, message", [
    (dict(x=np.ones(3)), r"^missing argument 'A' \(the arguments are"),
    (dict(x=np.ones(3), A=np.eye(3), B=1.0), r"^unexpected argument 'B'"),
    (dict(x=np.ones(3), A=np.ones(3)), r"^A: a matrix \(2-D array\), got shape \(3,\)$"),
    (dict(x=np.ones(4), A=np.eye(3)), r"^x: size 4 along axis 0, but n = 3 from A$"),
    (dict(x=np.array([1.0, np.nan, 0.0]), A=np.eye(3)), r"^x: contains nan or inf$"),
    (dict(x=np.array(["a", "b", "c"]), A=np.eye(3)), r"^x: expected numbers, got ndarray$"),
])
def test_bad_arguments_are_one_line_errors(backend, args, message):
    fw = _framework(backend)
    fn = sg.grad("x'*A*x", "x", vectors="x", matrices="A").compile(backend=backend)
    for framework_arrays in (False, True):  # numpy arguments, and the framework's own
        a = args
        if framework_arrays:
            conv = fw.numpy.asarray if backend == "jax" else fw.as_tensor
            a = {k: conv(v) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
                 for k, v in args.items()}
        with pytest.raises(ValueError, match=message) as err:
            fn(**a)
        assert "\n" not in str(err.value)


def test_logdet_of_a_matrix_without_positive_det_is_one_line(backend):
    _framework(backend)
    fn = sg.grad("logdet(X)", "X", matrices="X").compile(backend=backend)
    with pytest.raises(ValueError, match=r"^logdet: det of the matrix is not positive"):
        fn(X=-np.eye(3))


def test_a_backend_without_a_matrix_printer_and_an_unknown_one_are_one_line():
    d = sg.grad("x'*x", "x", vectors="x")
    with pytest.raises(ValueError, match=r"^compile: backend 'python' has no printer for matrix"):
        d.compile(backend="python")
    with pytest.raises(ValueError, match=r"^backend: 'tpu' is not registered"):
        d.compile(backend="tpu")


def test_cupy_agrees_with_numpy_where_a_gpu_is():
    cp = pytest.importorskip("cupy", reason="CuPy not installed (needs a CUDA GPU): the cupy "
                                            "matrix printer is tested only where one exists")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("no CUDA GPU here: the cupy matrix printer is tested only where one is")
    for case in FORMS:
        if case[0] in SLOW:
            continue
        d = _derivation(case)
        args = case[5]()
        for g, w in zip(d.compile(backend="cupy")(**args), d.compile()(**args)):
            assert np.abs(cp.asnumpy(g) - w).max() <= 1e-12 * max(np.abs(w).max(), 1e-300)
