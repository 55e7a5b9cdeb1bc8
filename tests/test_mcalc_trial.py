"""Matrix calculus as a new user tried it (issue 12): printing, messages and generated code."""
import numpy as np
import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli

RNG = np.random.default_rng(12)


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def _module(src):
    ns: dict = {}
    exec(compile(src, "<generated>", "exec"), ns)
    return ns


# -- A: --format python takes the user's names, by keyword ----------------------------------------
def test_python_module_is_called_by_keyword():
    r = _run("hessian", "sum(log(1+exp(-y.*(X*w))))", "--wrt", "w", "--vector", "w,y",
             "--matrix", "X", "--format", "python")
    assert r.exit_code == 0, r.output
    assert "def f_and_hessian(X, w, y):" in r.output  # sorted by name
    ns = _module(r.output)
    X, w, y = RNG.normal(size=(6, 3)), RNG.normal(size=3), np.sign(RNG.normal(size=6))
    got = ns["f_and_hessian"](X=X, w=w, y=y)
    want = sg.hessian("sum(log(1+exp(-y.*(X*w))))", "w", vectors="w y",
                      matrices="X").compile()(X=X, w=w, y=y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b)
    assert ns["f_and_derivative"] is ns["f_and_hessian"]


@pytest.mark.parametrize("cmd, fname", [("grad", "f_and_gradient"),
                                        ("derivative", "f_and_jacobian")])
def test_python_function_named_per_command(cmd, fname):
    f = "x'*A*x" if cmd == "grad" else "A*x"
    r = _run(cmd, f, "--wrt", "x", "--vector", "x", "--matrix", "A", "--format", "python")
    assert r.exit_code == 0, r.output
    assert f"def {fname}(A, x):" in r.output


def test_python_module_names_that_are_not_plain_stay_data():
    # a builtin, numpy's alias and a name like a generated temporary
    d = sg.grad("sum(t0) + list'*np*list", "list", vectors="list t0", matrices="np")
    src = d.to_python()
    assert "def f_and_gradient(_a0, _a1, t0):" in src
    assert "_a0 = 'list'" in src and "_a1 = 'np'" in src
    ns = _module(src)
    A, x, t = RNG.normal(size=(3, 3)), RNG.normal(size=3), RNG.normal(size=2)
    v, g = ns["f_and_gradient"](x, A, t0=t)
    np.testing.assert_allclose(g, (A + A.T) @ x)
    fn = d.compile()
    np.testing.assert_allclose(fn(list=x, np=A, t0=t)[1], g)
