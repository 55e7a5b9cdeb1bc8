"""Graph ops are one registration each (symgrad.graph.ops): a toy op registered in one place gets
its derivation (matrix level, backward pass, element level), its kernel (both code paths) and its
printing, with no other file touched; a registration missing a piece, or a node of an op nobody
registered, fails naming it."""
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive.backprop import JACOBIANS, VJPS
from symgrad.graph.network import Node
from symgrad.core.matexpr import hadamard
from symgrad.graph.ops import OPS, Op, Symbol, register_op, same_dims


def _gate_define(net, node):
    a, b = (net.sym(i) for i in node.inputs)
    return hadamard(a, b)


def _gate_jacobian(net, node, wrt):
    a, b = node.inputs
    other = net.sym(b if wrt == a else a)
    return sp.DiagMatrix(other), f"{node.name} = {a} ⊙ {b}: entry i reads entry i of each"


def _gate_vjp(net, node, g):
    a, b = node.inputs
    return [(a, hadamard(g, net.sym(b)), f"g ← g ⊙ {b}"), (b, hadamard(g, net.sym(a)), f"g ← g ⊙ {a}")]


def _gate_scalar(net, node, ins, params):
    return ins[0].multiply_elementwise(ins[1])


@pytest.fixture
def gate():
    """The toy op: an elementwise product of two values (a gate, as in GLU), registered once."""
    op = register_op(Op("toy_gate", _gate_define, _gate_jacobian, _gate_vjp, _gate_scalar,
                        same_dims("toy_gate"), "an elementwise product (a gate)",
                        label="toy gate", symbol=Symbol("g")))
    yield op
    del OPS["toy_gate"]


def gated_net():
    net = sg.Network()
    x = net.input("x", 2)
    a = net.act(net.dense(x, 2), "tanh", name="a")
    b = net.act(net.dense(x, 2), "sigmoid", name="b")
    g = net.apply("toy_gate", a, b, name="g")
    return net.set_loss(net.dense(g, 1, name="yhat"), "mse")


def test_a_registered_op_is_derived_compiled_and_printed(gate):
    net = gated_net()
    assert JACOBIANS["toy_gate"] is _gate_jacobian and VJPS["toy_gate"] is _gate_vjp
    # the kernel, on both code paths, against central differences
    rng = np.random.default_rng(0)
    for n, scalar in ((3, True), (50, False)):
        X, Y = rng.normal(size=(n, 2)), rng.normal(size=(n, 1))
        params = net.init_params(seed=n)
        assert sg.gradcheck(net, params, X, Y) < 1e-7
        k = net.compile(scalar=scalar)
        loss, grads = k(params, X, Y)
        assert np.isfinite(loss) and set(grads) == set(net.parameters)
    # the matrix level: the chain through the gate, simplified, equals the backward pass's gradient
    d = net.derive("W1")
    text = d.to_text()
    assert "∂g/∂a" in text and "diag(b)" in text
    assert "\\operatorname{diag}" in sg.to_latex(d)
    # the element level: unit by unit, checked by the engine against sympy.diff of the written-out
    # loss, and equal to the matrix level's entry at a point
    e = net.derive("w1", level="element")
    assert e.meta["checked"]
    X, Y = rng.normal(size=(1, 2)), rng.normal(size=(1, 1))
    params = net.init_params(seed=7)
    _, grads = net.compile()(params, X, Y)
    S = e.meta["scalar"]
    point = {s: float(v) for M, name in ((S.inputs["x"], None),) for s, v in zip(M, X[0])}
    point.update({S.target[0]: float(Y[0, 0])})
    for p, M in S.params.items():
        point.update({s: float(v) for s, v in zip(M, np.asarray(params[p]).reshape(-1))})
    assert float(e.meta["explicit"].xreplace(point)) == pytest.approx(grads["W1"][0, 0], rel=1e-10)


def test_a_registration_missing_a_piece_fails_naming_it():
    with pytest.raises(TypeError, match="the op 'half' lacks vjp, scalar"):
        register_op(Op("half", _gate_define, _gate_jacobian, None, None, same_dims("half"),
                       "half an op"))
    assert "half" not in OPS


def test_every_engine_refuses_an_unregistered_op_by_name():
    net = sg.Network()
    x = net.input("x", 2)
    h = net.act(net.dense(x, 2), "tanh", name="h")
    net.nodes["m"] = Node("m", "nobody", (h, h), dim=2)  # past the builder
    net.set_loss(net.dense("m", 1, name="yhat"), "mse")
    for call in (net.backprop, net.compile, lambda: net.derive("W1"),
                 lambda: net.derive("w1", level="element")):
        with pytest.raises(NotImplementedError, match="no registered op 'nobody' \\(node 'm'\\)"):
            call()
    with pytest.raises(NotImplementedError, match="apply: no registered op 'nobody'"):
        net.apply("nobody", h)


def test_apply_checks_sizes_with_the_ops_own_rule(gate):
    net = sg.Network()
    x = net.input("x", 2)
    a, b = net.dense(x, 2), net.dense(x, 3)
    with pytest.raises(ValueError, match="toy_gate: the inputs have sizes 2, 3"):
        net.apply("toy_gate", a, b)


def test_a_registered_name_is_not_replaced_silently(gate):
    """Re-registering "add" as a − b once replaced it for every network without a word."""
    from symgrad.compile.backends import BACKENDS, register_backend
    with pytest.raises(TypeError, match="the op 'add' is already registered"):
        register_op(OPS["add"])
    with pytest.raises(TypeError, match="'numpy' is already registered"):
        register_backend(BACKENDS["numpy"])
    with pytest.raises(TypeError, match="'slides' is already registered"):
        sg.register_notation(sg.Notation("slides"))
    assert register_op(OPS["add"], replace=True) is OPS["add"]


def test_element_level_refuses_a_node_named_like_one_of_its_scalars():
    """Units are named after nodes: a node named b2 or y made its units the very symbols of a bias
    or the target, and the result was wrong with the self-check passing."""
    for name in ("b2", "y"):
        net = sg.Network()
        x = net.input("x", 1)
        h = net.act(net.dense(x, 1), "tanh", name=name)
        net.set_loss(net.dense(h, 1), "mse")
        with pytest.raises(ValueError, match=f"the scalar {name} would stand for both"):
            net.derive("w1", level="element")
        assert net.derive("W1").result is not None  # the matrix level names no scalars: it works


def test_display_names_never_merge_two_values():
    """An output node named y and the target were both Y: ∇W1 showed (−Y + Y) = 0."""
    net = sg.Network()
    x = net.input("x", 2)
    h = net.act(net.dense(x, 2, name="z1"), "tanh", name="Z1")
    net.set_loss(net.dense(h, 1, name="y"), "mse")
    g = str(net.gradients()["W1"])
    assert "Y′ - Y" in g and "tanh'(Z1)" in g
    assert sg.gradcheck(net) < 1e-6


def test_a_free_symbol_in_a_hand_built_activation_never_reaches_code():
    from symgrad.graph.activations import Activation
    evil = sp.Symbol("__import__('os').system('echo INJECTED')")
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    act = Activation("evil", sp.Lambda(t, t * evil), sp.Lambda((t, a), evil), "e", "e'")
    net = sg.Network()
    net.set_loss(net.dense(net.act(net.dense(net.input("x", 1), 1), act), 1), "mse")
    with pytest.raises(ValueError, match="holds the free symbol"):
        net.compile()


def test_a_sum_of_a_value_with_itself_counts_it_twice_in_the_printed_chain():
    """add(h, h): the chain showed ∂s/∂h = I and lost the factor 2 (the kernel was right)."""
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 2), 2), "tanh", name="h1")
    net.set_loss(net.dense(net.add(h, h, name="s"), 1), "mse")
    assert "∂s/∂h₁ = 2I" in net.derive("W1").to_text()
    assert sg.gradcheck(net) < 1e-6


def test_every_registered_op_has_a_label_and_a_symbol_a_reader_can_read():
    """Titles, diagrams and handouts write an op by its registration, never by its key: an op
    without a label or symbol is refused at registration, and no label is an identifier (the
    trial's scale_shift, attn_softmax)."""
    import symgrad.graph.network  # noqa: F401  (registers attention, embedding, conv)
    assert {"dense", "act", "add", "normalize", "scale_shift", "scores", "attn_softmax",
            "attend", "embedding", "conv2d", "conv1d"} <= set(OPS)
    for key, op in OPS.items():
        assert op.label and "_" not in op.label, key
        assert isinstance(op.symbol, Symbol) and op.symbol.letter, key
        assert len(op.symbol.operands) <= 3 and all(isinstance(p, str) for p in op.symbol.params)


def test_a_registration_without_label_or_symbol_fails_naming_them():
    with pytest.raises(TypeError, match="the op 'plain' lacks label, symbol"):
        register_op(Op("plain", _gate_define, _gate_jacobian, _gate_vjp, _gate_scalar,
                       same_dims("plain"), "an op with no name for readers"))
    with pytest.raises(TypeError, match="must be a Symbol"):
        register_op(Op("plain", _gate_define, _gate_jacobian, _gate_vjp, _gate_scalar,
                       same_dims("plain"), "words", label="plain", symbol="g"))
    assert "plain" not in OPS
