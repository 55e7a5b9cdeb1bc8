"""Backends are one registration each (symgrad.compile.backends): the python backend (the typed
program unrolled over Python floats) is a second printing of the same program and equals the numpy
backend; an unknown backend is refused listing the registered ones."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.compile.backends import BACKENDS


@pytest.mark.parametrize("head", [("identity", "mse"), ("softmax", "cross_entropy"),
                                  ("sigmoid", "bce")])
def test_python_backend_equals_numpy(head):
    net = sg.mlp([3, 4, 2 if head[1] != "bce" else 1], hidden="tanh", output=head[0], loss=head[1])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    Y = rng.integers(0, 2, 30) if head[1] == "cross_entropy" else rng.uniform(size=(30, net.nodes[net.output_node].dim))
    params = net.init_params(seed=3)
    ref_loss, ref = net.compile(backend="numpy", scalar=False)(params, X, Y)
    k = net.compile(backend="python")
    loss, grads = k(params, X, Y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for p in net.parameters:
        np.testing.assert_allclose(grads[p], ref[p], rtol=1e-10, atol=1e-14)
    assert "import" not in k.scalar_source(30) and k.relu_grad_at_zero == 0


def test_backends_are_registered_and_an_unknown_one_is_named():
    assert {"numpy", "python"} <= set(BACKENDS)
    with pytest.raises(ValueError, match="backend: 'cuda' is not registered; the backends are 'numpy', 'python'"):
        sg.mlp([2, 2, 1]).compile(backend="cuda")


def test_python_backend_refuses_work_it_would_unroll_too_far():
    net = sg.mlp([64, 32, 10])
    X, Y = np.zeros((100, 64)), np.zeros((100, 10))
    with pytest.raises(ValueError, match="backend 'python': 100 examples × 2368 weight entries"):
        net.compile(backend="python")(net.init_params(), X, Y)


def test_a_notation_preset_is_one_registration(tmp_path):
    """A preset registered once is usable by name in to_latex, handouts and the CLI."""
    from click.testing import CliRunner

    from symgrad.cli import cli
    from symgrad.printing.names import NOTATIONS
    sg.register_notation(sg.Notation("plain", bold=False, letters=(("h", "a"),)))
    try:
        net = sg.mlp([2, 2, 1])
        tex = sg.to_latex(net.derive("W1"), notation="plain")
        assert r"\mathbf" not in tex and "a^{(1)}" in tex
        assert "a^{(1)}" in sg.handout(net, notation="plain")
        r = CliRunner().invoke(cli, ["handout", "2-2-1", "--notation", "plain", "-o",
                                     str(tmp_path / "h.tex")])
        assert r.exit_code == 0, r.output
        assert "a^{(1)}" in (tmp_path / "h.tex").read_text()
    finally:
        del NOTATIONS["plain"]
    with pytest.raises(ValueError, match="notation must be one of slides, feature, esl, not 'plain'"):
        sg.to_latex(net.derive("W1"), notation="plain")
    r = CliRunner().invoke(cli, ["handout", "2-2-1", "--notation", "plain"])
    assert r.exit_code == 2 and "notation must be one of slides, feature, esl, not 'plain'" in r.output


def test_a_network_file_may_register_the_preset_it_names(tmp_path):
    from click.testing import CliRunner

    from symgrad.cli import cli
    from symgrad.printing.names import NOTATIONS
    f = tmp_path / "net.py"
    f.write_text("import symgrad as sg\nsg.register_notation(sg.Notation('mine', bold=False))\n"
                 "net = sg.mlp([2, 2, 1])\n")
    try:
        r = CliRunner().invoke(cli, ["handout", str(f), "--notation", "mine", "-o",
                                     str(tmp_path / "h.md")])
        assert r.exit_code == 0, r.output
        assert r"\mathbf" not in (tmp_path / "h.md").read_text()
    finally:
        NOTATIONS.pop("mine", None)
