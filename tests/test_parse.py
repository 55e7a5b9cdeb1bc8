"""Tests for symgrad.parse: valid text, hostile text, a round-trip property, and symbol lists."""
import sympy as sp
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from symgrad.core.primitives import leaky_relu, relu, sigmoid
from symgrad.core.parse import MAX_DEPTH, MAX_LENGTH, MAX_TOKENS, ParseError, parse, parse_symbols

x, y, z, x1, x2 = (sp.Symbol(n, real=True) for n in ("x", "y", "z", "x1", "x2"))


# -- valid input ----------------------------------------------------------------------------------
def test_seed_function_is_an_exact_column_vector():
    got = parse("2*x1 + x2, pi*x2, -x1/x2")
    assert isinstance(got, sp.MatrixBase) and got.shape == (3, 1)
    assert got == sp.Matrix([2 * x1 + x2, sp.pi * x2, -x1 / x2])


@pytest.mark.parametrize("text, expected", [
    ("x^2", x**2), ("x**2", x**2), ("2^3^2", sp.Integer(512)), ("(2^3)^2", sp.Integer(64)),
    ("-x**2", -(x**2)), ("-2**2", sp.Integer(-4)), ("(-2)**2", sp.Integer(4)),
    ("2**-x", 2**(-x)), ("x**-2", x**-2), ("--x", x), ("+x", x), ("-x*y", -x * y),
    ("x - y - z", x - y - z), ("x / y / z", x / (y * z)), ("x - y*z + 1", x - y * z + 1),
    ("0.75", sp.Rational(3, 4)), ("1e-3", sp.Rational(1, 1000)), ("2.5E+4", sp.Integer(25000)),
    (".5", sp.Rational(1, 2)), ("0.1", sp.Rational(1, 10)), ("12", sp.Integer(12)),
    ("sigmoid(x)", sigmoid(x)), ("max(x, y, 0)", sp.Max(x, y, 0)), ("min(x, 1)", sp.Min(x, 1)),
    ("log(x)", sp.log(x)), ("ln(x)", sp.log(x)), ("e", sp.E), ("pi", sp.pi),
    ("exp(1) - e", sp.Integer(0)), ("leaky_relu(x, 0.2)", leaky_relu(x, sp.Rational(1, 5))),
    ("leaky_relu(x)", leaky_relu(x, sp.Rational(1, 100))), ("sqrt(x)", sp.sqrt(x)),
    ("  2 *\n x1\t+ x2 \r\n", 2 * x1 + x2), ("sin(x)**2 + cos(x)^2", sp.sin(x)**2 + sp.cos(x)**2),
    ("relu(w_11*x1 + b)", relu(sp.Symbol("w_11", real=True) * x1 + sp.Symbol("b", real=True))),
])
def test_valid(text, expected):
    assert parse(text) == expected


def test_numbers_are_exact_sympy_numbers():
    assert parse("0.75") == sp.Rational(3, 4) and isinstance(parse("0.75"), sp.Rational)
    assert isinstance(parse("1e3"), sp.Integer) and parse("1e3") == 1000
    assert parse("0.1 + 0.2") == sp.Rational(3, 10)  # no float on the way


def test_symbols_are_real():
    for name in ("x", "x1", "theta", "w_11", "W1_12", "beta", "lambda"):
        got = parse(name)
        assert got == sp.Symbol(name, real=True) and got.is_real
        assert got != sp.Symbol(name)


def test_deep_but_allowed_nesting_parses():
    depth = MAX_DEPTH - 1
    assert parse("(" * depth + "x" + ")" * depth) == x
    assert parse("sin(" * depth + "x" + ")" * depth).has(sp.sin)
    assert parse("-" * depth + "x") == -x
    assert parse("x**-" * (depth // 2) + "x").has(x)


# -- hostile or broken input ----------------------------------------------------------------------
HOSTILE = [
    ("__import__('os').system('touch /tmp/x')", "underscore"),
    ("().__class__.__bases__", "attribute access is not allowed"),
    ("x.real", "attribute access is not allowed"),
    ("lambda: 1", "':'"),
    ("'s'", "strings are not allowed"),
    ('"s"', "strings are not allowed"),
    ("x[0]", "subscripts are not allowed ('[' at column 2)"),
    ("f(x=1)", "keyword arguments are not allowed ('=' at column 4)"),
    ("sin(x=1)", "keyword arguments are not allowed"),
    ("x +", "unexpected end of input after '+' at column 3"),
    ("(x + 1", "unbalanced parenthesis: '(' at column 1 is never closed"),
    ("x + 1)", "unexpected ')' at column 6"),
    ("(" * 10_000 + "x" + ")" * 10_000, f"20001 characters (the limit is {MAX_LENGTH})"),
    ("(" * 150 + "x" + ")" * 150, "nested too deeply"),
    ("x" * 1_000_000, "1000000 characters"),
    ("-" * 5000 + "x", f"more than {MAX_TOKENS} tokens"),
    ("-" * 150 + "x", "nested too deeply"),
    ("x**" * 3000 + "x", "tokens"),
    ("x**" * 150 + "x", "nested too deeply"),
    ("sin(" * 120 + "x" + ")" * 120, "nested too deeply"),
    ("2x", "implicit multiplication is not supported: write 2*x"),
    ("x y", "missing operator before 'y' at column 3"),
    ("(x)(y)", "missing operator"),
    ("x,,y", "unexpected ',' at column 3"),
    (",x", "unexpected ',' at column 1"),
    ("x,", "unexpected end of input after ','"),
    ("(x, y)", "tuples are not allowed"),
    ("", "empty expression"),
    ("   \n\t", "empty expression"),
    ("sin", "'sin' is a function: call it as sin(...)"),
    ("sin + 1", "'sin' is a function"),
    ("foo(x)", "unknown function 'foo' at column 1 (allowed: abs, acos"),
    ("pi(x)", "'pi' is a constant"),
    ('exec("1")', "reserved"),
    ("eval", "reserved"),
    ("open('f')", "reserved"),
    ("import os", "reserved"),
    ("getattr(x, 'y')", "reserved"),
    ("x; y", "unexpected character ';' at column 2"),
    ("x = 1", "'=' at column 3"),
    ("x == 1", "comparisons are not allowed"),
    ("x < 1", "comparisons are not allowed"),
    ("x > 1", "comparisons are not allowed"),
    ("x != 1", "'!'"),
    ("x & y", "'&'"),
    ("x | y", "'|'"),
    ("~x", "'~' at column 1"),
    ("x % 2", "'%'"),
    ("x // 2", "floor division"),
    ("x @ y", "'@'"),
    ("{x}", "braces are not allowed"),
    ("x # comment", "comments are not allowed"),
    ("x $ y", "'$'"),
    ("x \\\n+ 1", "backslash"),
    ("`x`", "backticks are not allowed"),
    ("\x00", "'\\x00' at column 1 (control characters"),
    ("x\x0b", "control characters"),
    ("x\u00b2", "'²' (U+00B2) at column 2 (only ASCII"),
    ("\u2028x", "only ASCII"),
    ("x\uff0by", "only ASCII"),
    ("__x", "underscore"),
    ("_x", "underscore"),
    ("x__y", "underscore"),
    ("sqrt(x, y)", "'sqrt' takes exactly 1 argument, got 2"),
    ("max(x)", "'max' takes at least 2 arguments, got 1"),
    ("leaky_relu(x, 1, 2)", "'leaky_relu' takes 1 to 2 arguments, got 3"),
    ("sin()", "'sin' takes exactly 1 argument, got 0"),
    ("()", "empty parentheses at column 1"),
    ("1..2", "'.' at column 3"),
    ("1.2.3", "at most one decimal point"),
    ("x.", "decimal point must be followed by digits"),
    ("x ** * y", "unexpected '*' at column 6"),
    ("9**9**9", "numbers too large"),
    ("2**10**6", "numbers too large"),
    ("1e999999", "numbers too large"),
    ("sqrt(2**9999 + 1)", "number too large for 'sqrt'"),
    ("(2**9999 + 1)**(1/2)", "number too large for '**'"),
    ("exp(log(2**9999 + 1)/2)", "number too large for 'log'"),
    ("1" * 2000, "too long"),
    ("max(" + ", ".join(f"x{i}" for i in range(40)) + ")", "too many arguments to 'max'"),
    ("max(x, sqrt(-1))", "cannot apply 'max'"),
]


@pytest.mark.parametrize("text, fragment", HOSTILE, ids=lambda v: repr(v)[:30])
def test_hostile_input_raises_parse_error(text, fragment):
    with pytest.raises(ParseError) as info:  # anything but a ParseError fails the test
        parse(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and len(message) < 400
    assert info.value.text == text


@pytest.mark.parametrize("text, column", [
    ("x.real", 2), ("x + 1)", 6), ("(x + 1", 1), ("f(x=1)", 4), ("x y", 3), ("x,,y", 3),
    ("  x +", 5), ("1 + foo(x)", 5), ("x\u00b2", 2), ("x + 'a'", 5), ("", None),
])
def test_error_columns(text, column):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.column == column


def test_injection_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    for text in (f"__import__('os').system('touch {marker}')",
                 f"open('{marker}', 'w')",
                 f"exec(\"open('{marker}', 'w')\")"):
        with pytest.raises(ParseError):
            parse(text)
    assert not marker.exists()


@pytest.mark.parametrize("value, name", [(5, "int"), (None, "NoneType"), (b"x", "bytes"),
                                         (["x"], "list")])
def test_non_string_input(value, name):
    with pytest.raises(ParseError, match=f"expected a string, got {name}"):
        parse(value)
    with pytest.raises(ParseError, match="expected a string"):
        parse_symbols(value)


def test_parse_error_is_a_value_error():
    assert issubclass(ParseError, ValueError)


# -- property: text built alongside its SymPy expression parses back to it ------------------------
# A node is (text, precedence, expr); precedence 1 sum, 2 product, 3 signed, 4 power, 5 atom.
SYMS = {n: sp.Symbol(n, real=True) for n in "xyz"}
FUNCS = {"sin": sp.sin, "cos": sp.cos, "exp": sp.exp, "log": sp.log, "tanh": sp.tanh}
BINARY = {"+": (1, lambda a, b: a + b), "-": (1, lambda a, b: a - b),
          "*": (2, lambda a, b: a * b), "/": (2, lambda a, b: a / b)}
SPACE = st.sampled_from(["", " ", "  ", "\n", "\t"])


def wrap(node, need):
    text, prec, _ = node
    return text if prec >= need else f"({text})"


def binary(args):
    op, a, b, s = args
    prec, apply = BINARY[op]
    return (f"{wrap(a, prec)}{s}{op}{s}{wrap(b, prec + 1)}", prec, apply(a[2], b[2]))


def power(args):
    base, k, op = args
    return (f"{wrap(base, 5)}{op}{k}", 4, base[2] ** k)


def wrapper(args):
    kind, c = args
    return ((f"({c[0]})", 5, c[2]) if kind == "()" else
            (f"{kind}{wrap(c, 3)}", 3, -c[2] if kind == "-" else c[2]))


def extend(children):
    # Binary operators listed twice: sums and products are what real input is made of.
    binaries = st.tuples(st.sampled_from(sorted(BINARY)), children, children, SPACE).map(binary)
    return st.one_of(
        binaries, binaries,
        st.tuples(children, st.integers(-2, 3), st.sampled_from(["**", "^"])).map(power),
        st.tuples(st.sampled_from(["-", "+", "()"]), children).map(wrapper),
        st.tuples(st.sampled_from(sorted(FUNCS)), children, SPACE).map(
            lambda a: (f"{a[0]}({a[2]}{a[1][0]}{a[2]})", 5, FUNCS[a[0]](a[1][2]))),
    )


LEAVES = st.one_of(st.sampled_from(sorted(SYMS)).map(lambda n: (n, 5, SYMS[n])),
                   st.integers(0, 9).map(lambda k: (str(k), 5, sp.Integer(k))))
EXPRESSIONS = st.recursive(LEAVES, extend, max_leaves=10)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_parse_matches_the_expression_built_alongside(node):
    text, _, expected = node
    assume(not expected.has(sp.zoo, sp.nan, sp.oo, -sp.oo))  # x/0 has no value to compare
    got = parse(text)
    assert got == expected or sp.simplify(got - expected) == 0, text


# -- parse_symbols --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["x1 x2", "x1,x2", "x1, x2", " x1 ,\tx2\n", "x1 ,x2"])
def test_parse_symbols_valid(text):
    got = parse_symbols(text)
    assert got == [x1, x2] and all(s.is_real for s in got)


def test_parse_symbols_single_and_long_names():
    assert parse_symbols("theta") == [sp.Symbol("theta", real=True)]
    assert parse_symbols("w_11 W1_12 lambda") == [sp.Symbol(n, real=True)
                                                   for n in ("w_11", "W1_12", "lambda")]


@pytest.mark.parametrize("text, fragment", [
    ("", "empty list of symbols"), ("  ", "empty list of symbols"),
    ("x1,,x2", "expected a symbol name at column 4, got ','"), (",x1", "got ','"),
    ("x1,", "expected a symbol name at column 3, got ','"),
    ("x1 x1", "duplicate symbol 'x1' at column 4"),
    ("x1, x2, x1", "duplicate symbol 'x1'"), ("sin", "'sin' is a function"),
    ("pi", "'pi' is a constant"), ("x e", "'e' is a constant"), ("x+1", "got '+'"),
    ("2", "got '2'"), ("_x", "underscore"), ("x__y", "underscore"), ("x1;x2", "';'"),
    ("eval", "reserved"), ("x(1)", "got '('"), ("x" * 20_000, "too long"), ("x.y", "attribute"),
])
def test_parse_symbols_invalid(text, fragment):
    with pytest.raises(ParseError) as info:
        parse_symbols(text)
    assert fragment in str(info.value)


def test_a_number_running_into_an_underscore_gets_advice_that_parses():
    """'1_000' was told to write 1*_000, which the parser refuses too."""
    with pytest.raises(ParseError, match="digit separators are not supported: write 1000"):
        parse("1_000")
    with pytest.raises(ParseError, match="names start with a letter, products need"):
        parse("3_a")
    assert parse("1000") == 1000
