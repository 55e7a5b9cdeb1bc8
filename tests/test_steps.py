"""Steps are typed: every step's kind is a StepKind member, an unknown kind fails when it is
recorded, and the f∘g layout finds its two methods by the steps' types, not by their words."""
import json
from dataclasses import replace

import pytest
import sympy as sp

import symgrad as sg
from symgrad.core.derivation import Derivation, Step, StepKind
from symgrad.handouts.build import handout
from symgrad.printing.latex import to_latex

F = ("x1 - 2*x2 + x3/4", "x1 x2 x3", "f")
G = ("x1 + 2*x2, x2, -x1 + 3", "x1 x2", "g")
x = sp.Symbol("x", real=True)


# -- recording a kind ---------------------------------------------------------------------------------
def test_an_unknown_kind_fails_naming_it_and_the_kinds_there_are():
    d = Derivation()
    with pytest.raises(ValueError) as e:
        d.add(x, 1, "a typo", "forwrd")
    msg = str(e.value)
    assert msg.startswith("unknown step kind 'forwrd'; the kinds are ") and "\n" not in msg
    for k in StepKind:
        assert repr(k.value) in msg
    assert not d.steps  # nothing was recorded
    with pytest.raises(ValueError, match="unknown step kind 'Chain_Rule'"):
        Step(x, sp.Integer(1), rule="Chain_Rule")  # a Step made directly is checked too
    with pytest.raises(ValueError, match="unknown step kind None"):
        d.add(x, 1, rule=None)


def test_a_kind_given_as_its_string_is_stored_as_the_member():
    d = Derivation()
    d.add(x, 1, "forward propagation", "forward")
    d.add(x, 2, "", StepKind.CHAIN_RULE)
    d.add(None, 3)  # no kind: a plain equality
    assert [s.rule for s in d.steps] == [StepKind.FORWARD, StepKind.CHAIN_RULE, StepKind.PLAIN]
    assert d.steps[0].rule is StepKind.FORWARD and d.steps[2].rule is StepKind.PLAIN
    # replace() re-checks the kind, so a copied step is typed as well
    assert replace(d.steps[0], rule="backward").rule is StepKind.BACKWARD
    # the members are the old strings, so code comparing strings keeps working, and JSON writes
    # the plain string
    assert StepKind.CHAIN_RULE == "chain_rule" and f"{StepKind.CHAIN_RULE}" == "chain_rule"
    rules = [s["rule"] for s in json.loads(json.dumps(d.to_dict()))["steps"]]
    assert rules == ["forward", "chain_rule", ""]
    assert all(type(s["rule"]) is str for s in d.to_dict()["steps"])


def test_a_step_method_is_a_number():
    with pytest.raises(ValueError, match="method is the number of its way"):
        Derivation().add(x, 1, method=-1)
    with pytest.raises(ValueError, match="method is the number of its way"):
        Derivation().add(x, 1, method="1")


def test_display_nodes_never_parse_text():
    # a string is a name, never parsed; anything that is neither a name nor a number is refused
    assert Derivation().add("__import__('os')", 1) == 1
    with pytest.raises(sp.SympifyError):
        Derivation().add(b"__import__('os').getcwd()", 1)
    with pytest.raises(sp.SympifyError):
        Derivation().add(x, object())


# -- every engine records typed steps -----------------------------------------------------------------
def _derivations():
    yield "chain", sg.chain(F, G)
    yield "chain3", sg.chain(("a*b", "a b", "f"), ("p + q, p*q", "p q", "g"),
                             ("t**2, 3*t", "t", "h"))
    yield "jacobian", sg.derive_jacobian("2*x1 + x2, pi*x2, -x1/x2", "x1 x2")
    yield "gradient", sg.derive_gradient("2*a*x + b/y", "a b")
    yield "jacobian, full steps", sg.derive_jacobian("x**2*sin(x), exp(x*y)", "x y", steps="full")
    yield "vec", sg.derive_vec_jacobian("w1*x1 + w2*x2", sp.Matrix([[sp.Symbol("w1"),
                                                                     sp.Symbol("w2")]]))
    yield "matrix_gradient", sg.derive_matrix_gradient(2, 3)
    nets = {"xor": sg.mlp([2, 2, 1], hidden="relu", output="identity", loss="mse"),
            "softmax": sg.mlp([2, 3, 3], hidden="sigmoid", output="softmax",
                              loss="cross_entropy"),
            "bce+penalty": sg.mlp([2, 2, 1], hidden="tanh", output="sigmoid", loss="bce",
                                  penalty=sp.Rational(1, 10))}
    shared = sg.Network()  # one weight used twice: the element level sums over its uses
    h = shared.act(shared.dense(shared.input("x", 1), 1, W="W1", b=False, name="z1"), "tanh",
                   name="h")
    shared.set_loss(shared.dense(h, 1, W="W1", b=False, name="yhat"), "mse")
    nets["shared"] = shared
    for name, net in nets.items():
        for p in net.parameters:
            yield f"{name} {p}", net.derive(p)
        yield f"{name} backprop", net.backprop()
    for name, net, w, of in (("xor", nets["xor"], "w1", "output"), ("xor", nets["xor"], "w5", "loss"),
                             ("bce+penalty", nets["bce+penalty"], "w1", "loss"),
                             ("shared", shared, "w1", "loss")):
        yield f"{name} element {w} of {of}", net.derive(w, level="element", of=of)
    yield "xor element w1, full steps", nets["xor"].derive("w1", level="element", steps="full")
    for d in nets["xor"].derive_all(level="element"):  # every partial assembled, then descent
        yield f"xor element {d.title}", d


def test_every_engine_records_a_step_kind_member():
    seen = set()
    for name, d in _derivations():
        assert d.steps, name
        for s in d.steps:
            assert type(s.rule) is StepKind, (name, s)
            seen.add(s.rule)
    # every kind is one some engine records: the enum lists what is used, nothing besides
    assert seen == set(StepKind) - {StepKind.PLAIN}


# -- the f∘g layout finds its methods by type ---------------------------------------------------------
def _reworded(d, words):
    """The same derivation with every justification said in other words."""
    return Derivation(d.title, [replace(s, why=words(i, s)) for i, s in enumerate(d.steps)],
                      d.result, d.meta)


def test_the_side_by_side_layout_does_not_read_the_words():
    d = sg.chain(F, G)
    golden = to_latex(d)
    assert golden.startswith(r"\begin{gathered}")
    # without the "method k:" lead-ins (which the columns' headings replace) the old lookup by
    # the English prefix found nothing; by type the layout is the same, byte for byte
    plain = _reworded(d, lambda i, s: s.why.replace("method 1: ", "").replace("method 2: ", ""))
    assert not any(s.why.startswith(("method 1", "method 2")) for s in plain.steps)
    assert to_latex(plain) == golden
    # other words entirely: the columns still form, with the headings from the steps' kinds
    other = _reworded(d, lambda i, s: f"Schritt {i}" if s.why else "")
    tex = to_latex(other)
    assert tex.startswith(r"\begin{gathered}") and r"\begin{array}{cc}" in tex
    assert (r"\text{Method 1: substitute, then differentiate} \quad & \text{Method 2: the chain rule} "
            r"\\[4pt]") in tex
    one, two = (next(i for i, s in enumerate(d.steps) if s.method == k) for k in (1, 2))
    first, second = tex.split(r"\begin{aligned}[t]")[1:]
    assert r"\text{Schritt %d}" % one in first and r"\text{Schritt %d}" % two in second
    assert r"\text{Schritt %d}" % two not in first and r"\text{Schritt %d}" % one not in second
    assert tex.endswith(golden[golden.index(r"\text{both methods agree: }"):])
    # and through the handout, which lays out the same derivation block
    assert (r"\text{Method 1: substitute, then differentiate} \quad & \text{Method 2: the chain rule}"
            in handout(other))


def test_words_saying_method_1_make_no_columns():
    """Structure comes from the steps' method numbers: the same words without them are one chain."""
    d = sg.chain(F, G)
    flat = Derivation(d.title, [replace(s, method=0) for s in d.steps], d.result, d.meta)
    assert [s.why[:8] for s in flat.steps if s.why.startswith("method")] == ["method 1",
                                                                            "method 2"]
    assert to_latex(flat) == to_latex(d, two_methods=False)
    assert to_latex(flat).startswith(r"\begin{aligned}")


def test_the_methods_are_marked_in_one_run_closed_by_agree():
    for d in (sg.chain(F, G), sg.chain(("a*b", "a b"), ("p + q, p*q", "p q"), ("t**2, 3*t", "t"))):
        methods = [s.method for s in d.steps]
        first, end = methods.index(1), len(methods) - 1
        assert set(methods[:first]) == {0} and methods[end] == 0
        assert d.steps[end].rule is StepKind.AGREE
        assert methods[first:end] == sorted(methods[first:end]) and set(methods[first:end]) == {1, 2}
        ways = {k: {s.rule for s in d.steps if s.method == k} for k in (1, 2)}
        assert StepKind.CHAIN_RULE in ways[2] and StepKind.CHAIN_RULE not in ways[1]
    # f∘g∘h lays out in columns too (the English lookup found three "method" steps and gave up)
    assert to_latex(d).startswith(r"\begin{gathered}") and r"Method 2: the chain rule" in to_latex(d)


def test_sigmoid_derivative_of_one_output_is_not_the_identity():
    """σ′ of a single sigmoid output: SymPy turned its 1×1 of ones into the identity, so every
    one-output sigmoid derivation printed diag(ŷ ⊙ (I − ŷ)) (issue 13)."""
    net = sg.mlp([2, 1], output="sigmoid", loss="bce")
    text = "\n".join(d.to_text() for d in net.derive_all()) if hasattr(net, "derive_all") else \
        net.derive("W1").to_text()
    assert "(I - yhat)" not in text and "I - yhat" not in text
    tex = sg.handout(net)
    assert r"\mathbf{I} - \hat" not in tex and r"\mathbf{1} - \hat{\mathbf{y}}" in tex
