"""Rule-by-rule steps inside each partial (issue 13, Build 4): `--steps full` and steps="full" write
∂f/∂x as the sum, constant multiple, product, quotient, power and chain rules (with u = …) take it
apart, each line checked against sympy.diff before it is recorded; a rule that gives a wrong line
fails loudly, and a class with no rule fails naming the class."""
import json
import re

import pytest
import sympy as sp
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.derivation import Derivation, Partial, StepKind
from symgrad.core.parse import parse
from symgrad.core.primitives import MissingRuleError, relu, sigmoid
from symgrad.derive import calculus, rules
from symgrad.derive.hessian import derive_hessian
from symgrad.derive.rules import Pending, RuleStepError, Use

from symgrad.handouts.pdf import compile_pdf, tex_available
from test_renderers import markdown_math, pdflatex_accepts, repr_math, report


def sym(name):
    return sp.Symbol(name, real=True)


x, y, a, b, u = map(sym, "xyabu")


def partials(d):
    """{lhs: [its lines]} for the rule-by-rule partials of a derivation, in order."""
    out, cur = {}, None
    for s in d.steps:
        if s.lhs is not None:
            cur = None
            if isinstance(s.lhs, Partial) or type(s.lhs).__name__ == "Partial2":
                if s.rule in (StepKind.RULE, StepKind.PARTIAL):
                    cur = out.setdefault(s.lhs, [])
        if cur is not None:
            cur.append(s)
    return out


def value(line, defs=None):
    """A line's value, independently of the engine: pending parts by .doit()."""
    return line.doit()


def whys(d):
    return " | ".join(s.why for s in d.steps)


def check_all_lines(f, var, lines):
    """Every line with no u left equals sympy.diff(f, var); the last line has no pending part."""
    truth = sp.diff(f, var)
    names = set()
    for s in lines:
        names |= {m.group(1) for m in re.finditer(r"let (\w+) = ", s.why)}
    for s in lines:
        free = {v.name for v in s.rhs.free_symbols}
        if not (free & names) or not s.rhs.atoms(Pending):
            if not (free & names):
                assert sp.simplify(value(s.rhs) - truth) == 0 or \
                    rules.agrees(value(s.rhs), truth), (s.rhs, truth)
    assert not lines[-1].rhs.atoms(Pending) and not ({v.name for v in lines[-1].rhs.free_symbols}
                                                    & names)
    assert lines[-1].rule is StepKind.PARTIAL
    assert rules.agrees(lines[-1].rhs, truth) is True


# -- the seeds' examples --------------------------------------------------------------------------
def test_product_rule_x2_sin_x():
    d = calculus.derive_jacobian("x**2*sin(x)", "x", steps="full")
    lines = partials(d)[Partial(sp.Symbol("f"), x)]
    assert lines[0].rhs == Pending(x**2 * sp.sin(x), x)
    assert "the product rule, (f h)′ = f′ h + f h′" in lines[1].why
    assert lines[1].rhs == x**2 * Pending(sp.sin(x), x) + sp.sin(x) * Pending(x**2, x)
    said = whys(d)
    assert "sin'(z) = cos(z)" in said and "the power rule, (zᵖ)′ = p zᵖ⁻¹" in said
    check_all_lines(x**2 * sp.sin(x), x, lines)
    assert lines[-1].rhs == d.result[0, 0]  # the Jacobian's own entry, reached by "simplify"


def test_quotient_rule():
    f = (x**2 + 1) / (x - 1)
    d = calculus.derive_jacobian("(x**2 + 1)/(x - 1)", "x", steps="full")
    lines = partials(d)[Partial(sp.Symbol("f"), x)]
    assert "the quotient rule, (f/h)′ = (f′ h − f h′)/h²" == lines[1].why
    assert lines[1].rhs == ((x - 1) * Pending(x**2 + 1, x) - (x**2 + 1) * Pending(x - 1, x)) \
        / (x - 1)**2
    check_all_lines(f, x, lines)
    assert sp.simplify(lines[-1].rhs - (x**2 - 2 * x - 1) / (x - 1)**2) == 0


def test_chain_rule_names_its_inner_function_cs181():
    """CS 181: ∂/∂w1 exp(w0 + w1 x1 + w2 x2) = x1 exp(…), by u = w0 + w1 x1 + w2 x2."""
    w1 = sym("w1")
    d = calculus.derive_jacobian("exp(w0 + w1*x1 + w2*x2)", "w1", steps="full")
    lines = partials(d)[Partial(sp.Symbol("f"), w1)]
    text = [s.why for s in lines]
    assert text[1] == ("let u = w0 + w1 x1 + w2 x2; by the chain rule, (f(u))′ = f′(u) u′, with "
                       "exp'(z) = exp(z)")
    assert lines[1].rhs == sp.exp(u) * Pending(u, w1)
    assert text[2].startswith("∂u/∂w1: the sum rule") and "w0, w2 x2 do not depend on w1" in text[2]
    assert text[-1] == "substitute u = w0 + w1 x1 + w2 x2 back" or text[-2].startswith("substitute")
    f = parse("exp(w0 + w1*x1 + w2*x2)")
    check_all_lines(f, w1, lines)
    assert sp.simplify(lines[-1].rhs - sym("x1") * f) == 0


def test_two_perspectives_2ax_plus_b_over_y():
    d = calculus.derive_jacobian("2*a*x + b/y", "x y a b", steps="full")
    ps = partials(d)
    assert len(ps) == 4
    f = parse("2*a*x + b/y")
    for (lhs, lines) in ps.items():
        check_all_lines(f, lhs.wrt, lines)
    assert [s.rhs for s in ps[Partial(sp.Symbol("f"), y)]][-1] == -b / y**2
    assert "2 a x does not depend on y" in ps[Partial(sp.Symbol("f"), y)][1].why


def test_sigmoid_of_an_affine_unit():
    w1 = sym("w1")
    f = parse("sigmoid(w1*x1 + w2*x2 + b)")
    d = calculus.derive_jacobian(f, "w1", steps="full")
    lines = partials(d)[Partial(sp.Symbol("f"), w1)]
    assert "let u = b + w1 x1 + w2 x2; by the chain rule" in lines[1].why
    assert "σ'(z) = σ(z)(1 − σ(z))" in lines[1].why
    assert lines[1].rhs == sigmoid(u) * (1 - sigmoid(u)) * Pending(u, w1)
    check_all_lines(f, w1, lines)


def test_softplus_form_log_1_plus_exp():
    f = parse("log(1 + exp(u))")
    d = calculus.derive_jacobian(f, "u", steps="full")
    lines = partials(d)[Partial(sp.Symbol("f"), u)]
    # u is the variable: the inner function is named v
    assert lines[1].why.startswith("let v = exp(u) + 1; by the chain rule")
    check_all_lines(f, u, lines)
    assert sp.simplify(lines[-1].rhs - sp.exp(u) / (1 + sp.exp(u))) == 0


@pytest.mark.parametrize("text, var, rule", [
    ("x**x", "x", "logarithmic differentiation"), ("2**(3*x)", "x", "the exponential rule"),
    ("sqrt(1 + x**2)", "x", "the power rule"), ("tanh(relu(x*y)**2)", "x", "relu'(z)"),
    ("max(x, y**2)", "y", "∂max(z, …)/∂z"), ("abs(x*y) + atan(x)", "x", "atan'(z)"),
    ("softplus(x) - erf(x**2)", "x", "softplus'(z)"), ("exp(-x)/(1 + exp(-x))", "x",
                                                             "the quotient rule")])
def test_more_rules(text, var, rule):
    f = parse(text)
    v = next(s for s in f.free_symbols if s.name == var)
    d = calculus.derive_jacobian(f, var, steps="full")
    assert rule in whys(d)
    check_all_lines(f, v, partials(d)[Partial(sp.Symbol("f"), v)])


@pytest.mark.parametrize("f, rule", [
    (sp.Piecewise((x**2, x > 0), (sp.sin(3 * x), True)), "differentiate each case"),
    (sp.Max(x, x**2 + y), "∂max(z, …)/∂z"), (sp.Min(sp.exp(x), 1 - x), "∂min(z, …)/∂z")])
def test_cases_and_lattices(f, rule):
    lines = rules.rule_steps(f, x)
    assert rule in " ".join(w for _, w, _ in lines)
    assert rules.agrees(lines[-1][0], sp.diff(f, x)) is True


def test_a_partial_that_is_zero_says_why():
    d = calculus.derive_jacobian("x**2 + a", "x y", steps="full")
    lines = partials(d)[Partial(sp.Symbol("f"), y)]
    assert len(lines) == 1 and lines[0].rhs == 0 and lines[0].why == "f does not depend on y"


def test_normal_steps_are_unchanged():
    d = calculus.derive_jacobian("x**2*sin(x)", "x")
    assert not any(s.rule is StepKind.RULE for s in d.steps)
    assert [s.rule for s in d.steps] == [StepKind.DEFINITION, StepKind.PARTIAL, StepKind.JACOBIAN]
    with pytest.raises(ValueError, match="steps must be 'normal' or 'full'"):
        calculus.derive_jacobian("x", "x", steps="all")


def test_gradient_and_hessian_take_full_steps():
    g = calculus.derive_gradient("x**2*sin(x) + y", "x y", steps="full")
    assert g.result == sg.gradient("x**2*sin(x) + y", "x y")
    assert "the product rule" in whys(g)
    h = derive_hessian("x**3*y + sin(x*y)", "x y", steps="full")
    assert h.result == derive_hessian("x**3*y + sin(x*y)", "x y").result
    f = parse("x**3*y + sin(x*y)")
    second = {k: v for k, v in partials(h).items() if type(k).__name__ == "Partial2"}
    assert len(second) == 3  # the upper triangle
    grad = calculus.gradient(f, "x y")
    for k, lines in second.items():
        i = [x, y].index(k.args[1])
        assert lines[0].rhs == Pending(grad[i], k.args[2])  # ∂/∂x_j of the gradient's entry i
        check_all_lines(grad[i], k.args[2], lines)


def test_too_many_entries_is_a_clear_error():
    with pytest.raises(ValueError, match="up to 36 entries"):
        calculus.derive_jacobian(", ".join(f"x{i}" for i in range(7)),
                                 " ".join(f"x{i}" for i in range(7)), steps="full")


# -- every line is checked: a broken rule is caught ------------------------------------------------
def test_a_wrong_product_rule_fails_loudly(monkeypatch):
    def wrong(e, var):  # (f h)′ = f′ h′: the classic slip
        return Use("product", sp.Mul(*[rules.d(f, var) for f in e.args]))
    monkeypatch.setitem(rules.RULES, sp.Mul, wrong)
    with pytest.raises(RuleStepError, match=r"the product rule gave a wrong step for ∂/∂x\[x² sin"):
        calculus.derive_jacobian("x**2*sin(x)", "x", steps="full")
    monkeypatch.undo()
    calculus.derive_jacobian("x**2*sin(x)", "x", steps="full")  # the real rule passes


def test_a_wrong_chain_rule_fails_loudly(monkeypatch):
    real = rules.RULES[sp.Pow]

    def forgets_the_inner_derivative(e, var):
        use = real(e, var)
        return Use(use.rule, use.value.xreplace({Pending(rules.U, var): 1}), use.inner) \
            if use.inner is not None else use
    monkeypatch.setitem(rules.RULES, sp.Pow, forgets_the_inner_derivative)
    with pytest.raises(RuleStepError, match="the power rule gave a wrong step"):
        calculus.derive_jacobian("(3*x + 1)**2", "x", steps="full")


def test_a_wrong_sum_rule_fails_loudly_in_a_network(monkeypatch):
    real = rules.RULES[sp.Add]

    def counts_twice(e, var):
        use = real(e, var)
        return Use(use.rule, 2 * use.value, dropped=use.dropped)
    monkeypatch.setitem(rules.RULES, sp.Add, counts_twice)
    with pytest.raises(RuleStepError, match=r"the sum rule gave a wrong step for "
                       r"∂/∂yhat\[\(−y \+ yhat\)²/2\]: 2 u, that is −2 y \+ 2 yhat, is not"):
        sg.mlp([2, 1]).derive("w1", level="element", steps="full")


def test_a_wrong_primitive_derivative_fails_loudly(monkeypatch):
    def wrong(e, var):
        return Use("sin", -sp.cos(e.args[0]) * rules.d(e.args[0], var))
    monkeypatch.setitem(rules.RULES, sp.sin, wrong)
    with pytest.raises(RuleStepError, match="the sin rule gave a wrong step"):
        calculus.derive_jacobian("x**2*sin(x)", "x", steps="full")


def test_a_wrong_simplified_result_fails_loudly():
    with pytest.raises(RuleStepError, match="wrong step"):
        rules.record(Derivation(), Partial(sp.Symbol("f"), x), x**2, x, result=3 * x)


# -- the table is complete -------------------------------------------------------------------------
def test_every_class_the_engines_produce_has_a_rule():
    rules.check_complete()
    classes = rules.engine_classes()
    for cls in (sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Integer, sp.exp, sp.log, sp.sin, sp.cos,
                sp.tan, sp.tanh, sigmoid, relu, sp.Piecewise):
        assert cls in classes
        rules.rule_for(cls)


def test_a_class_without_a_rule_fails_naming_it():
    class rules_mystery(sp.Function):
        pass
    with pytest.raises(MissingRuleError, match="no differentiation rule for rules_mystery"):
        rules.rule_for(rules_mystery)
    with pytest.raises(MissingRuleError, match="no differentiation rule for rules_mystery"):
        rules.check_complete([sp.Add, rules_mystery])
    with pytest.raises(MissingRuleError, match="rules_mystery"):
        rules.rule_steps(rules_mystery(x**2), x)
    sg.defderiv(rules_mystery, lambda ans, z: 2 * z)  # a rule, but sympy.diff cannot take it
    try:
        with pytest.raises(MissingRuleError, match="sympy.diff leaves"):
            rules.rule_steps(rules_mystery(x**2), x)
    finally:
        from symgrad.core import primitives
        primitives.RULES.pop(rules_mystery, None)
        primitives.PRIMITIVES.pop("rules_mystery", None)


def test_a_primitive_registered_later_has_its_rule():
    from symgrad.core.primitives import Primitive

    class rules_cube(Primitive):
        pass
    sg.defderiv(rules_cube, lambda ans, z: 3 * z**2)
    try:
        lines = rules.rule_steps(rules_cube(2 * x), x)
        assert rules.agrees(lines[-1][0], 24 * x**2)
        assert "rules_cube'(z) = 3*z**2" in lines[1][1]
    finally:
        from symgrad.core import primitives
        primitives.RULES.pop(rules_cube, None)
        primitives.PRIMITIVES.pop("rules_cube", None)


# -- random expression trees: the last line of every partial is sympy.diff -------------------------
LEAVES = st.sampled_from([x, y, a, sp.Integer(2), sp.Integer(-3), sp.Rational(1, 2), sp.pi])
UNARY = [sp.exp, sp.sin, sp.cos, sp.tanh, sigmoid, relu, lambda e: sp.log(1 + e**2),
         lambda e: sp.sqrt(1 + e**2), lambda e: e**3, lambda e: 1 / (2 + e**2)]


def trees():
    return st.recursive(
        LEAVES,
        lambda kids: st.one_of(
            st.tuples(st.sampled_from(UNARY), kids).map(lambda t: t[0](t[1])),
            st.tuples(kids, kids).map(lambda t: t[0] + t[1]),
            st.tuples(kids, kids).map(lambda t: t[0] * t[1]),
            st.tuples(kids, kids).map(lambda t: t[0] / (3 + t[1]**2))),
        max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_random_trees_end_on_sympy_diff(f):
    if not f.has(x):
        f = f + x
    lines = rules.rule_steps(f, x)
    last = lines[-1][0]
    assert not last.atoms(Pending)
    assert rules.agrees(last, sp.diff(f, x)) is not False
    d = Derivation()
    rules.record(d, Partial(sp.Symbol("f"), x), f, x, calculus.tidy(sp.diff(f, x)))
    assert d.steps[-1].rule is StepKind.PARTIAL


# -- the element level: each local partial rule by rule -------------------------------------------
def test_element_level_2_2_1_w1():
    net = sg.mlp([2, 2, 1])
    full = net.derive("w1", level="element", steps="full")
    normal = net.derive("w1", level="element")
    assert full.result == normal.result
    ps = partials(full)
    names = [str(k) for k in ps]
    assert names == ["∂ℓ/∂yhat", "∂yhat/∂h1_1", "∂h1_1/∂z1_1", "∂z1_1/∂w1"]
    S = full.meta["scalar"]
    yhat, h11, z11, w1 = (sym(n) for n in ("yhat", "h1_1", "z1_1", "w1"))
    defs = {yhat: S.loss, h11: S.defs[yhat], z11: S.defs[h11], w1: S.defs[z11]}
    for k, lines in ps.items():
        check_all_lines(defs[k.wrt], k.wrt, lines)
    text = full.to_text()
    assert "let u = −y + ŷ; by the chain rule" in text
    assert "relu′(z) = step(z)" in text and "(rule by rule above)" in text
    # the product of the factors restates its left-hand side after the nested partials
    j = next(s for s in full.steps if s.rule is StepKind.JACOBIAN)
    assert j.lhs == Partial(sp.Symbol("ℓ"), w1)


@pytest.mark.parametrize("spec, opts, wrt", [
    ([2, 1], dict(output="sigmoid", loss="bce"), "w1"),
    ([2, 2, 2], dict(hidden="tanh", output="softmax", loss="cross_entropy"), "w1"),
    ([2, 2, 1], dict(hidden="sigmoid"), "b1"),
    ([2, 2, 1], {}, "w5")])
def test_element_level_full_steps_keep_the_result(spec, opts, wrt):
    net = sg.mlp(spec, **opts)
    full = net.derive(wrt, level="element", steps="full")
    assert full.result == net.derive(wrt, level="element").result
    assert any(s.rule is StepKind.RULE for s in full.steps)
    out = net.derive(wrt, level="element", of="output", steps="full") if spec[-1] == 1 else None
    if out is not None:
        assert out.result == net.derive(wrt, level="element", of="output").result
    with pytest.raises(ValueError, match="steps must be"):
        net.derive(wrt, level="element", steps="yes")


# -- printing: text, JSON, LaTeX in pdflatex, KaTeX and MathJax ------------------------------------
def test_json_reads_pending_parts_back():
    d = calculus.derive_jacobian("x**2*sin(x)", "x", steps="full")
    steps = d.to_dict()["steps"]
    assert steps[1]["rhs"] == "Derivative(x**2*sin(x), x)" and steps[1]["rule"] == "rule"
    back = sp.sympify(steps[2]["rhs"])
    assert sp.simplify(back.doit() - sp.diff(sp.Symbol("x")**2 * sp.sin(sp.Symbol("x")),
                                            sp.Symbol("x"))) == 0


def test_text_shows_pending_parts_and_named_inner_functions():
    d = calculus.derive_jacobian("exp(w0 + w1*x1)", "w1", steps="full")
    text = d.to_text()
    assert "∂f/∂w₁ = ∂/∂w₁[exp(w₀ + w₁x₁)]" in text.replace("  ", " ")
    assert "exp(u)(∂u/∂w₁)" in text


def test_latex_of_full_steps_renders(renderers, tmp_path):
    ds = [calculus.derive_jacobian("x**2*sin(x), (x**2 + 1)/(x - 1)", "x", steps="full"),
          calculus.derive_jacobian("exp(w0 + w1*x1 + w2*x2), sigmoid(w1*x1 + b)", "w1",
                                   steps="full"),
          calculus.derive_jacobian("log(1 + exp(u)), x**x, 2**(3*x), sqrt(1 + x**2)", "x u",
                                   steps="full"),
          sg.mlp([2, 2, 1]).derive("w1", level="element", steps="full"),
          sg.mlp([2, 1], output="sigmoid", loss="bce").derive("w1", level="element",
                                                              steps="full")]
    tex = ds[0].to_latex()
    assert r"\frac{\partial}{\partial x}\left[x^{2} \sin{\left(x \right)}\right]" in tex
    assert r"\text{the product rule, $( f h ) ' = f ' h + f h '$}" in tex
    assert r"\frac{\partial u}{\partial w_{1}}" in ds[1].to_latex()
    blocks = [repr_math(d) for d in ds] + [(d.to_latex(notation="feature"), True) for d in ds[3:]]
    blocks += markdown_math(sg.handout(ds, fmt="markdown"))
    assert not (f := renderers.failures(blocks, "full steps")), report(f)
    pdflatex_accepts(blocks, tmp_path)


@pytest.mark.skipif(not tex_available(), reason="pdflatex not installed")
@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_handouts_of_full_steps_compile_without_overfull_boxes(fmt, tmp_path):
    ds = [calculus.derive_jacobian("x**2*sin(x), (x**2 + 1)/(x - 1)", "x", steps="full"),
          sg.mlp([2, 2, 1]).derive("w1", level="element", steps="full")]
    pdf = compile_pdf(sg.handout(ds, fmt=fmt), tmp_path / "full.pdf", engine="pdflatex",
                      keep_log=True)
    log = pdf.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
    over = [float(m) for m in re.findall(r"Overfull \\[hv]box \((\d+(?:\.\d+)?)pt too", log)]
    assert [o for o in over if o > 2.0] == []


# -- the command line -------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_jacobian_steps_full():
    r = run("jacobian", "x**2*sin(x), (x**2 + 1)/(x - 1)", "--wrt", "x", "--steps", "full")
    assert r.exit_code == 0, r.output
    assert "the product rule" in r.output and "the quotient rule" in r.output
    plain = run("jacobian", "x**2*sin(x)", "--wrt", "x", "--steps")
    assert plain.exit_code == 0 and "the product rule" not in plain.output
    before = run("jacobian", "x**2*sin(x)", "--steps", "--wrt", "x")  # --steps before an option
    assert before.exit_code == 0 and before.output == plain.output
    js = json.loads(run("jacobian", "x**2*sin(x)", "--wrt", "x", "--format", "json", "--steps",
                        "full").output)
    assert [s["rule"] for s in js["steps"]].count("rule") >= 3
    tex = run("jacobian", "x**2*sin(x)", "--wrt", "x", "--format", "latex", "--steps", "full")
    assert r"\text{the product rule" in tex.output


def test_cli_derive_and_hessian_steps_full():
    r = run("derive", "2-2-1", "--level", "element", "--wrt", "w1", "--steps", "full")
    assert r.exit_code == 0, r.output
    assert "∂z₁,₁/∂w₁ = ∂/∂w₁[w₁x₁ + w₂x₂ + b₁]" in r.output
    r = run("hessian", "x**3*y + sin(x*y)", "--wrt", "x,y", "--steps", "full")
    assert r.exit_code == 0 and "∂²f/∂x∂y = ∂/∂y[" in r.output


@pytest.mark.parametrize("argv, fragment", [
    (["derive", "2-2-1", "--wrt", "W1", "--steps", "full"], "--steps full is for --level element"),
    (["derive", "2-2-1", "--steps"], "derive always prints every step"),
    (["grad", "x**2", "--wrt", "x", "--steps", "full"], "--steps full writes scalar partials rule by rule"),
    (["chain", "--fn", "x1", "--wrt", "x1", "--fn", "x1", "--wrt", "x1", "--steps", "full"],
     "--steps full writes scalar partials rule by rule"),
    (["jacobian", "--steps", "x**2", "--wrt", "x"], "'x**2' is not 'full'"),
    (["jacobian", "x0, x1, x2, x3, x4, x5, x6", "--wrt", "x0,x1,x2,x3,x4,x5,x6", "--steps",
      "full"], "up to 36 entries")])
def test_cli_misuse_of_steps_full(argv, fragment):
    r = CliRunner().invoke(cli, argv)
    assert r.exit_code == 2, r.output
    assert fragment in r.output and "Traceback" not in r.output
