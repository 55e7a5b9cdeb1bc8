"""Primitive functions: one registration each, carrying everything every engine knows about it.

Where it sits: core, the bottom. A primitive (relu, σ, erf, SymPy's tanh, …) is one
:func:`register_primitive` call right under its class. The record (:class:`PrimitiveSpec`) holds
its derivative rule (and second derivative where it exists), its names in text and LaTeX and its
rule in words, its code for each backend (the stable forms included) with the helpers that code
calls, whether it is kinked, the weight init it wants as an activation, and whether the parser may
call it. Everything else reads the registry and has no branch per primitive: sympy.diff through the
``fdiff`` of the primitives below, the matrix level through :func:`derivative`, the element level's
kinks and cases, the parser's whitelist (:data:`FUNCTIONS`), the named activations, the LaTeX and
code printers, the weight init. :func:`register_primitive` refuses a record with a piece missing,
naming the primitive and the piece; a printer asked for a backend a primitive has no code for fails
while compiling, naming both (never a NameError when the kernel is called).

A rule reads like autograd's ``defvjp``: ``ans`` is the primitive's output f(x), ``x`` its input
(then its other arguments, leaky_relu's a), and the rule returns f'(x), preferably in terms of
``ans`` (σ' = σ(1 - σ), tanh' = 1 - tanh²) so the value of the forward pass is reused.
``defderiv(cls, lambda ans, x: ...)`` is the short form: it registers (or replaces) only the rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable, Mapping

import sympy as sp
from sympy.codegen.cfunctions import expm1
from sympy.core.logic import fuzzy_and


class MissingRuleError(LookupError):
    """Raised when an expression uses a primitive that has no derivative rule."""


class MissingCodeError(MissingRuleError):
    """A primitive (or SymPy function) with no code for the backend being printed: a missing
    piece of its registration, found while compiling, as a missing rule is while deriving."""


@dataclass(frozen=True)
class PrimitiveSpec:
    """Everything about one elementwise primitive.

    - ``cls``: the SymPy class (symgrad's own relu, σ, … or SymPy's tanh, exp, erf, …);
    - ``name``: its name in text, in words and for the parser ("relu", "abs" for Abs);
    - ``deriv(ans, x, *rest)``: f'(x), with ``ans`` standing for f(x) (``rest``: its other
      arguments, leaky_relu's a); ``deriv2`` the same for f''(x), where it exists;
    - ``prime``: f' in text ("σ'"); ``latex``, ``prime_latex``: f and f' in LaTeX (\\sigma, \\sigma');
    - ``says``: the rule in words, for a derivation's justification ("σ'(z) = σ(z)(1 − σ(z))");
    - ``code``: backend name → how that backend writes f(args): a format string over the printed
      arguments ("np.maximum({0}, 0)"; they arrive as printed, so use them inside a call's
      parentheses), or a function ``(p, *args)`` of the printer and the argument expressions,
      which prints with ``p.code(e)``, ``p.paren(e)`` (parenthesized unless atomic), reads
      ``p.setting(key)`` (relu'(0)) and, for numpy, ``p.const(name, kind)``. Stable forms live
      here (σ clamped, log(1 + eᵘ) as softplus). A backend missing from it cannot print f;
    - ``helpers``: names the code calls (``_sigmoid``, ``_np_erf``) → the objects, put into the
      namespace of every generated kernel;
    - ``kinked``: f' jumps somewhere (relu, abs, max): the element level writes its cases, and
      substitutes a unit using it only where that reads well;
    - ``init``: "he" or "glorot", the weight init before it as a named activation (``hidden=name``);
      None: not a named activation (still usable in an expression in x);
    - ``parse``: the names the safe parser may call it by ("log", "ln"), with ``nargs`` its
      arity (min, max) or (n,), max None for any number; ``defaults``: the trailing arguments'
      values when left out (shown in LaTeX only when they differ);
    - ``shown_as``: the name formulas show it by when not its own (step(z) is relu'(z) in the notes);
    - ``sympy_latex``: SymPy's LaTeX printer writes it (e^{x}, |x|, \\tanh), as the notes do.
    """

    cls: type = None
    name: str = None
    deriv: Callable = None
    prime: str = None
    latex: str = None
    prime_latex: str = None
    says: str = None
    code: Mapping = None
    kinked: bool = None
    deriv2: Callable | None = None
    init: str | None = None
    parse: tuple = ()
    nargs: tuple = (1,)
    defaults: tuple = ()
    helpers: Mapping = field(default_factory=dict)
    shown_as: str = ""
    sympy_latex: bool = False


Rule = PrimitiveSpec  # the record a rule lives in (deriv, prime, prime_latex, says)
REQUIRED = ("cls", "name", "deriv", "prime", "latex", "prime_latex", "says", "code", "kinked")
INITS = ("he", "glorot")

PRIMITIVES: dict[str, PrimitiveSpec] = {}   # by name, in registration order
RULES: dict[type, PrimitiveSpec] = {}       # by class: what every route looks up
# The names users may call in parsed text (see symgrad.core.parse) → (what they build, arity);
# the registered primitives' ``parse`` names, plus sqrt, which is no primitive: it builds the
# power x**(1/2), which every rule and printer already knows.
FUNCTIONS: dict[str, tuple[Callable, tuple]] = {"sqrt": (sp.sqrt, (1,))}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "e": sp.E}
HELPERS: dict[str, object] = {}             # every registered helper, for generated code
SYMPIFY_LOCALS: dict[str, type] = {}        # symgrad's own classes, for reading its strings back


def register_primitive(cls, **pieces) -> PrimitiveSpec:
    """Register the primitive ``cls`` with its pieces (the fields of :class:`PrimitiveSpec`), or
    replace its registration. A required piece missing, an unknown piece or one of the wrong kind
    is a TypeError naming the primitive and the piece: a primitive that could not be derived,
    printed or compiled would fail later, far from here."""
    name = pieces.get("name") or getattr(cls, "__name__", repr(cls))
    known = {f.name for f in fields(PrimitiveSpec)} - {"cls"}
    unknown = sorted(set(pieces) - known)
    if unknown:
        raise TypeError(f"register_primitive: the primitive {name!r} has no piece "
                        f"{', '.join(unknown)} (the pieces: {', '.join(sorted(known))})")
    spec = PrimitiveSpec(cls=cls, **pieces)
    missing = [k for k in REQUIRED if getattr(spec, k) is None or getattr(spec, k) == ""]
    if missing:
        raise TypeError(f"register_primitive: the primitive {name!r} lacks {', '.join(missing)}")
    _check(spec)
    old = RULES.get(cls)
    clash = PRIMITIVES.get(spec.name)
    if clash is not None and clash.cls is not cls:
        raise TypeError(f"register_primitive: the name {spec.name!r} is {clash.cls.__name__}'s")
    for p in spec.parse:
        if p in CONSTANTS or p in FUNCTIONS and FUNCTIONS[p][0] is not cls:
            raise TypeError(f"register_primitive: the primitive {name!r}: the parser name {p!r} "
                            "is taken")
    for h, obj in spec.helpers.items():  # one object per name in every kernel's namespace
        if HELPERS.get(h, obj) is not obj and not (old and h in old.helpers):
            raise TypeError(f"register_primitive: the primitive {name!r}: the helper name {h!r} "
                            "is taken")
    if old is not None:  # a replacement (in place, keeping the order): drop the old's entries
        if old.name != spec.name:
            PRIMITIVES.pop(old.name, None)
        for p in old.parse:
            FUNCTIONS.pop(p, None)
    PRIMITIVES[spec.name] = RULES[cls] = spec
    FUNCTIONS.update({p: (cls, spec.nargs) for p in spec.parse})
    HELPERS.update(spec.helpers)
    if not cls.__module__.startswith("sympy"):
        SYMPIFY_LOCALS[cls.__name__] = cls
    return spec


def _check(spec: PrimitiveSpec) -> None:
    """The pieces' kinds: a registration that is complete but cannot work fails here too."""
    def bad(piece, what):
        raise TypeError(f"register_primitive: the primitive {spec.name!r}: {piece} must be {what}")
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, sp.Basic)):
        bad("cls", "a SymPy function class")
    for piece in ("deriv", "deriv2"):
        if getattr(spec, piece) is not None and not callable(getattr(spec, piece)):
            bad(piece, "a function (ans, x) -> f'(x)")
    for piece in ("name", "prime", "latex", "prime_latex", "says", "shown_as"):
        if not isinstance(getattr(spec, piece), str):
            bad(piece, "text")
    if not spec.name.isidentifier():
        bad("name", "an identifier")
    if not isinstance(spec.kinked, bool) or not isinstance(spec.sympy_latex, bool):
        bad("kinked and sympy_latex", "True or False")
    if spec.init is not None and spec.init not in INITS:
        bad("init", f"one of {', '.join(INITS)} (or None)")
    if isinstance(spec.parse, str) or not all(isinstance(p, str) and p.isidentifier()
                                              for p in spec.parse):
        bad("parse", "a tuple of identifiers")
    if not (isinstance(spec.nargs, tuple) and len(spec.nargs) in (1, 2)):
        bad("nargs", "(n,) or (min, max), max None for any number")
    lo, hi = spec.nargs * 2 if len(spec.nargs) == 1 else spec.nargs
    if not (isinstance(lo, int) and lo >= 1 and (hi is None or isinstance(hi, int) and hi >= lo)):
        bad("nargs", "(n,) or (min, max), max None for any number")
    if not isinstance(spec.code, Mapping):
        bad("code", "a mapping backend -> format string or function")
    for backend, code in spec.code.items():
        if isinstance(code, str):
            try:
                code.format(*["x"] * (hi or lo + 1))
            except (IndexError, KeyError, ValueError):
                bad(f"code[{backend!r}]", f"a format string over at most {hi or lo} arguments")
        elif not callable(code):
            bad(f"code[{backend!r}]", "a format string or a function (printer, *args)")
    if not isinstance(spec.helpers, Mapping) or not all(
            isinstance(h, str) and h.startswith("_") and h.isidentifier() for h in spec.helpers):
        bad("helpers", "a mapping from names beginning with _ to objects")


def defderiv(prim: type, deriv: Callable, *, prime: str | None = None,
             prime_latex: str | None = None, says: str = "") -> PrimitiveSpec:
    """Register (or replace) the derivative rule of the elementwise primitive ``prim``; a class
    registered only so has no code yet, and a kernel using it fails naming the backend."""
    old = RULES.get(prim)
    if old is not None:
        return register_primitive(prim, **{**_pieces(old), "deriv": deriv,
                                           "prime": prime or old.prime,
                                           "prime_latex": prime_latex or old.prime_latex,
                                           "says": says or old.says})
    name = prim.__name__
    prime = prime or f"{name}'"
    if not says:
        z = sp.Symbol("z", real=True)
        says = f"{prime}(z) = {sp.sstr(deriv(prim(z), z))}"
    return register_primitive(prim, name=name, deriv=deriv, prime=prime,
                              latex=rf"\operatorname{{{name}}}",
                              prime_latex=prime_latex or rf"\operatorname{{{name}}}'",
                              says=says, code={}, kinked=False)


def _pieces(spec: PrimitiveSpec) -> dict:
    return {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "cls"}


def rule_says(fn: type) -> str:
    """The rule of ``fn`` in words, for a justification ("" if it has none)."""
    rule = RULES.get(fn)
    return rule.says if rule else ""


def rule_for(prim: type) -> PrimitiveSpec:
    """The registration of ``prim``; a primitive without one fails loudly, by name."""
    try:
        return RULES[prim]
    except (KeyError, TypeError):
        raise MissingRuleError(
            f"no derivative rule for the primitive {getattr(prim, '__name__', prim)!r}; "
            "register one with symgrad.register_primitive (or symgrad.defderiv)") from None


def derivative(prim: type, x: sp.Expr, ans: sp.Expr | None = None, rest=()) -> sp.Expr:
    """f'(x) for the elementwise primitive ``prim``, with ``ans`` standing for f(x) if given
    (``rest``: its other arguments)."""
    rule = rule_for(prim)
    return rule.deriv(prim(x, *rest) if ans is None else ans, x, *rest)


def second_derivative(prim: type, x: sp.Expr, ans: sp.Expr | None = None, rest=()) -> sp.Expr:
    """f''(x), from the registered ``deriv2``; a primitive registered without one fails by name."""
    rule = rule_for(prim)
    if rule.deriv2 is None:
        raise MissingRuleError(f"no second derivative registered for the primitive {rule.name!r}")
    return rule.deriv2(prim(x, *rest) if ans is None else ans, x, *rest)


def step_says(prim: type) -> str:
    """f'(z) in words when f' is written with step(z) ("relu'(z) = step(z)"), what the element
    level's cases unfold; "" for any other primitive. Read off the rule itself."""
    rule = RULES.get(prim)
    if rule is None or not rule.kinked:
        return ""
    z = sp.Symbol("z", real=True)
    lo, hi = rule.nargs * 2 if len(rule.nargs) == 1 else rule.nargs
    rest = sp.symbols("a b c d")[:(hi or lo) - 1]
    try:
        d = rule.deriv(prim(z, *rest), z, *rest)
    except (TypeError, ValueError):
        return ""
    if not d.has(step):
        return ""
    return f"{rule.prime}(z) = " + sp.sstr(d).replace("*", " ").replace("-", "−")


class _Kinked:
    """The classes of the kinked primitives, read whenever iterated (so a primitive registered
    later counts), then ``extra``: ``expr.has(*kinked())``."""

    def __init__(self, extra):
        self.extra = tuple(extra)

    def __iter__(self):
        return iter([s.cls for s in PRIMITIVES.values() if s.kinked] + list(self.extra))


def kinked(*extra) -> _Kinked:
    return _Kinked(extra)


def shown_args(expr, spec: PrimitiveSpec) -> list:
    """The arguments of ``expr`` a display shows: trailing ones equal to their defaults left out."""
    args = list(expr.args)
    for default in reversed(spec.defaults):
        if len(args) > 1 and args[-1] == default:
            args.pop()
        else:
            break
    return args


def call_args(expr, spec: PrimitiveSpec) -> list:
    """The arguments of ``expr`` with left-out trailing ones filled from the defaults."""
    args = list(expr.args)
    lo, hi = spec.nargs * 2 if len(spec.nargs) == 1 else spec.nargs
    if hi is not None and len(args) < hi and spec.defaults:
        args += list(spec.defaults[len(spec.defaults) - (hi - len(args)):])
    return args


# -- settings -------------------------------------------------------------------------------------
# relu'(0) is a setting of the object that needs a value there (a network, a kernel, a compiled
# function), fixed when that object is made; the package default below only seeds new objects.
# Symbolically step(0) stays step(0): nothing global decides it, so no result depends on what else
# the process did (a global, with SymPy's cache holding step(0) evaluated under an old value, made
# a kernel give relu'(0) = 0 at batch size 4 and 1 at batch size 8).
_DEFAULT = {"relu_grad_at_zero": sp.Integer(0)}  # the notes': σ'(z) = 0 if z ≤ 0


def check_relu_grad_at_zero(value) -> sp.Rational:
    """relu'(0) as an exact 0, 1/2 or 1, given as a number (an int, a float, a Fraction or a SymPy
    number). Text is refused, never read: nsimplify would sympify it (eval), and this module sits
    below the safe parser."""
    refused = ValueError(f"relu'(0): expected a number 0, 1/2 or 1, got {value!r} "
                         f"(a {type(value).__name__})")
    if isinstance(value, (bool, str)):  # True is an int to Python, but here a slip, never 1
        raise refused
    try:
        number = sp.sympify(value, strict=True)  # numbers only: strict refuses text
    except sp.SympifyError:
        raise refused from None
    if not (isinstance(number, sp.Expr) and number.is_number and number.is_extended_real):
        raise refused
    value = sp.nsimplify(number)
    if value not in (0, 1, sp.Rational(1, 2)):
        raise ValueError(f"relu'(0) must be 0, 1/2 or 1, not {value}")
    return value


def relu_grad_at_zero_default() -> sp.Rational:
    """The relu'(0) that new networks and compiled functions start with."""
    return _DEFAULT["relu_grad_at_zero"]


def set_relu_grad_at_zero(value) -> None:
    """Choose the package default of relu'(0) for networks and functions made from now on: 0 as
    in the notes, 1, or 1/2. Objects made before keep theirs (``net.relu_grad_at_zero``,
    ``kernel.relu_grad_at_zero``); SymPy's cache is never touched."""
    _DEFAULT["relu_grad_at_zero"] = check_relu_grad_at_zero(value)


# -- code: the pieces the backends print -----------------------------------------------------------
# Python floats (the "python" backend, the unrolled path of tiny nets): forms that neither overflow
# nor raise; the kernel falls back to numpy only when one does.
def _exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _cosh(x):  # math.cosh raises past |x| ≈ 710 (1/cosh² of a logistic Hessian is 0.0 there)
    try:
        return math.cosh(x)
    except OverflowError:
        return math.inf


def _sinh(x):
    try:
        return math.sinh(x)
    except OverflowError:
        return math.copysign(math.inf, x)


def _log(x):
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _log1p(x):
    return math.log1p(x) if x > -1 else (-math.inf if x == -1 else math.nan)


def _sigmoid(x):
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _softplus(x):
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _logaddexp(a, b):
    """log(eᵃ + eᵇ) on floats, as np.logaddexp: the larger plus log1p of the smaller's share."""
    if a == b:  # ±inf too, where a − b is nan
        return a + math.log(2)
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _sign(x):
    return (x > 0) - (x < 0)


def _heaviside(x, h0=0.5):
    return 1.0 if x > 0 else (h0 if x == 0 else 0.0)


def _np_erf(x):
    """erf entrywise in x's dtype: scipy's ufunc when scipy is importable, else math.erf per entry
    (numpy has no erf). Looked up per call: an import of a loaded module is a dict lookup."""
    try:
        from scipy.special import erf
    except ImportError:
        import numpy as np
        x = np.asarray(x)
        dt = x.dtype if x.dtype.kind == "f" else np.dtype("float64")
        return np.frompyfunc(math.erf, 1, 1)(x).astype(dt)
    return erf(x)


def _py_cond(p, x, then, other):
    """``then if x > 0.0 else other`` on Python floats, ``{x}`` standing for x, evaluated once."""
    code = p.code(x)
    if not isinstance(x, (sp.Symbol, sp.Number)):
        return f"(lambda _x: {then.format(x='_x')} if _x > 0.0 else {other.format(x='_x')})({code})"
    return f"({then.format(x=code)} if {code} > 0.0 else {other.format(x=code)})"


def softplus_arg(a):
    """u if a is 1 + exp(u) (so log(a) is softplus(u)), else None."""
    if isinstance(a, sp.Add) and len(a.args) == 2 and sp.S.One in a.args:
        other = a.args[0] if a.args[1] == 1 else a.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _log_code(softplus_form, log1p_form, log_form):
    """log in its stable forms: log(1 + eᵘ) as softplus(u), log(1 + a) as log1p(a)."""
    def code(p, a):
        u = softplus_arg(a)
        if u is not None:
            return softplus_form.format(p.code(u))
        if isinstance(a, sp.Add) and sp.S.One in a.args:
            return log1p_form.format(p.code(a - 1))
        return log_form.format(p.code(a))
    return code


def _fold(form):
    """max/min of any number of arguments, folded pairwise with a two-argument ``form``."""
    def code(p, *args):
        out = p.code(args[0])
        for a in args[1:]:
            out = form.format(out, p.code(a))
        return out
    return code


def _np_step(p, x):  # in the kernel's dtype; step(0) = relu'(0) as this kernel sets it
    xc, at0 = p.paren(x), p.setting("relu_grad_at_zero")
    if at0 == 0 or at0 == 1:
        return f"({xc} {'>' if at0 == 0 else '>='} 0).astype(dt)"
    return f"np.heaviside({xc}, 0.5)"


def _py_step(p, x):
    at0 = float(p.setting("relu_grad_at_zero"))
    return f"_heaviside({p.code(x)}, {at0})" if at0 else _py_cond(p, x, "1.0", "0.0")


def _np_sigmoid(p, x):
    # 1/(1 + e⁻ˣ) with e⁻ˣ clamped at XMAX: no overflow, exact to rounding for x ≥ −709 (−88 in
    # float32); below, σ stays at its value there (≈ 1e-308, 6e-39) instead of going to 0.
    return f"(1/(1 + np.exp(np.minimum(-{p.paren(x)}, {p.const('xmax', 'xmax')}))))"


def _np_leaky_relu(p, x, a):
    xc = p.paren(x)
    if 0 <= a <= 1:
        return f"np.maximum({xc}, {p.code(a)}*{xc})"
    return f"np.where({xc} > 0, {xc}, {p.code(a)}*{xc})"


def _both(np_name, math_name=None):
    """Code for a function numpy and math both have by name."""
    return {"numpy": f"np.{np_name}({{0}})", "python": f"math.{math_name or np_name}({{0}})"}


_PY_FLOATS = {"_exp": _exp, "_log": _log, "_log1p": _log1p, "_softplus": _softplus}


# -- primitives -----------------------------------------------------------------------------------
class Primitive(sp.Function):
    """An elementwise function whose derivative comes from its registration (never hard-wired)."""

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return derivative(type(self), self.args[0], self)


class step(sp.Function):
    """The unit step, relu'(z) = step(z): 1 for z > 0, 0 for z < 0. step(0) is not decided here:
    it is relu'(0), a setting of whatever evaluates it (``step_cases(z, at0)``, a kernel, a
    network's ``relu_grad_at_zero``), so step(0) stays unevaluated. Unfolds to cases."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real and not x.is_zero:
            return sp.Integer(1) if x.is_positive else sp.Integer(0)
        return None

    def fdiff(self, argindex=1):
        return sp.Integer(0)  # zero almost everywhere; no Dirac delta in training

    def _eval_is_nonnegative(self):
        return True

    @staticmethod
    def _imp_(x):  # what lambdify calls: it knows no relu'(0), so at exactly 0 it says nan
        import numpy as np
        return np.where(x > 0, 1.0, np.where(x < 0, 0.0, np.nan))


register_primitive(step, name="step", deriv=lambda ans, x: sp.Integer(0), deriv2=lambda ans, x: 0,
                   prime="step'", latex=r"\operatorname{step}", prime_latex=r"\operatorname{step}'",
                   says="step'(z) = 0 for z ≠ 0", shown_as="relu'", kinked=True,
                   code={"numpy": _np_step, "python": _py_step}, helpers={"_heaviside": _heaviside})


def at_zero(expr, at0):
    """``expr`` with every step(0) replaced by relu'(0) = ``at0`` (a network's or a kernel's)."""
    return expr.replace(lambda e: isinstance(e, step) and e.args[0].is_zero, lambda e: at0) \
        if expr.has(step) else expr


class relu(Primitive):
    """relu(z) = max(0, z)."""

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            return sp.Max(0, x)
        return None

    def _eval_rewrite_as_Piecewise(self, x, **kwargs):
        return sp.Piecewise((0, x <= 0), (x, True))

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(0, x)

    @staticmethod
    def _imp_(x):
        import numpy as np
        return np.maximum(x, 0.0)


register_primitive(relu, name="relu", deriv=lambda ans, x: step(x), deriv2=lambda ans, x: 0,
                   prime="relu'", latex=r"\operatorname{relu}", prime_latex=r"\operatorname{relu}'",
                   says="relu'(z) = step(z), 1 for z > 0 and 0 for z < 0", kinked=True, init="he",
                   code={"numpy": "np.maximum({0}, 0)",
                         "python": lambda p, x: _py_cond(p, x, "{x}", "0.0")},
                   parse=("relu",))


class sigmoid(Primitive):
    """The logistic sigmoid σ(z) = 1 / (1 + exp(-z))."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)
        if isinstance(x, sp.Float):  # as exp(0.5) does: numbers in, a number out
            return 1 / (1 + sp.exp(-x))
        return None

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_is_positive(self):
        return self.args[0].is_extended_real

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)

    @staticmethod
    def _imp_(x):  # exp(-log(1 + e^-x)): no overflow for any finite x
        import numpy as np
        return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=float)))


register_primitive(sigmoid, name="sigmoid", deriv=lambda ans, x: ans * (1 - ans),
                   deriv2=lambda ans, x: ans * (1 - ans) * (1 - 2 * ans),
                   prime="σ'", latex=r"\sigma", prime_latex=r"\sigma'",
                   says="σ'(z) = σ(z)(1 − σ(z))", kinked=False, init="glorot",
                   code={"numpy": _np_sigmoid, "python": "_sigmoid({0})"},
                   helpers={"_sigmoid": _sigmoid}, parse=("sigmoid",))


class softplus(Primitive):
    """softplus(z) = log(1 + exp(z)); its derivative is σ(z)."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        if isinstance(x, sp.Float):
            return sp.log(1 + sp.exp(x))
        return None

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return sp.log(1 + sp.exp(self.args[0]))._eval_evalf(prec)

    @staticmethod
    def _imp_(x):
        import numpy as np
        return np.logaddexp(0.0, x)


register_primitive(softplus, name="softplus", deriv=lambda ans, x: sigmoid(x),
                   deriv2=lambda ans, x: sigmoid(x) * (1 - sigmoid(x)),
                   prime="softplus'", latex=r"\operatorname{softplus}",
                   prime_latex=r"\operatorname{softplus}'", says="softplus'(z) = σ(z)",
                   kinked=False, init="glorot",
                   code={"numpy": "np.logaddexp(0, {0})", "python": "_softplus({0})"},
                   helpers=_PY_FLOATS, parse=("softplus",))


class logsumexp(sp.Function):
    """logsumexp(z₁, …, zₖ) = log(e^z₁ + … + e^zₖ), k ≥ 2; ∂/∂zᵢ = exp(zᵢ − logsumexp(z)), the
    softmax weight of zᵢ. No parser name: it is what compile_function writes log(eˣ + eʸ) as
    (symgrad.compile.forms), printed as np.logaddexp, which neither overflows nor underflows."""

    @classmethod
    def eval(cls, *args):  # (any number of arguments is SymPy's nargs default: none set)
        if len(args) < 2:
            raise TypeError(f"logsumexp takes at least 2 arguments ({len(args)} given)")
        if all(a.is_number for a in args) and any(isinstance(a, sp.Float) for a in args):
            return sp.log(sp.Add(*map(sp.exp, args)))
        return None

    def fdiff(self, argindex=1):
        if not 1 <= argindex <= len(self.args):
            raise sp.ArgumentIndexError(self, argindex)
        rest = self.args[:argindex - 1] + self.args[argindex:]
        return derivative(logsumexp, self.args[argindex - 1], self, rest)

    def _eval_is_extended_real(self):
        return fuzzy_and(a.is_extended_real for a in self.args)

    def _eval_evalf(self, prec):
        return sp.log(sp.Add(*map(sp.exp, self.args)))._eval_evalf(prec)

    @staticmethod
    def _imp_(*xs):
        import functools
        import numpy as np
        return functools.reduce(np.logaddexp, xs)


register_primitive(logsumexp, name="logsumexp", deriv=lambda ans, x, *rest: sp.exp(x - ans),
                   prime="logsumexp'", latex=r"\operatorname{logsumexp}",
                   prime_latex=r"\operatorname{logsumexp}'",
                   says="∂logsumexp(z, …)/∂z = exp(z − logsumexp(z, …)), the softmax weight of z",
                   kinked=False, nargs=(2, None),
                   code={"numpy": _fold("np.logaddexp({0}, {1})"),
                         "python": _fold("_logaddexp({0}, {1})")},
                   helpers={"_logaddexp": _logaddexp})


class log1mexp(Primitive):
    """log1mexp(z) = log(1 − eᶻ), z < 0, in Mächler's two forms: log(−expm1(z)) for z > −log 2,
    log1p(−eᶻ) below (each alone loses every digit on the other side: log(−expm1(−40)) is log 1 = 0
    for −4.2e-18, log1p(−e^−1e-20) is log1p(−1) = −inf for −46.05). No parser name: it is what
    compile_function writes log(1 − eᶻ) as (symgrad.compile.forms)."""

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 - sp.exp(x))

    def _eval_evalf(self, prec):
        return sp.log(1 - sp.exp(self.args[0]))._eval_evalf(prec)

    @staticmethod
    def _imp_(x):
        import numpy as np
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > -_LOG2, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


_LOG2 = math.log(2)


def _log1mexp(x):
    if x > -_LOG2:
        return _log(-math.expm1(x)) if x <= 0 else math.nan
    return math.log1p(-math.exp(x))


def _np_log1mexp(p, x):
    # np.where evaluates both forms: log1p's at most at −log 2, or near 0 it warns of log1p(−1)
    xc, cut = p.paren(x), repr(-_LOG2)
    return (f"np.where({xc} > {cut}, np.log(-np.expm1({xc})), "
            f"np.log1p(-np.exp(np.minimum({xc}, {cut}))))")


register_primitive(log1mexp, name="log1mexp", deriv=lambda ans, x: sp.exp(x) / expm1(x),
                   deriv2=lambda ans, x: -sp.exp(x) / expm1(x)**2,
                   prime="log1mexp'", latex=r"\operatorname{log1mexp}",
                   prime_latex=r"\operatorname{log1mexp}'", says="log1mexp'(z) = eᶻ/expm1(z)",
                   kinked=False, code={"numpy": _np_log1mexp, "python": "_log1mexp({0})"},
                   helpers={"_log1mexp": _log1mexp, **_PY_FLOATS})


class leaky_relu(sp.Function):
    """leaky_relu(z, a) = z if z > 0 else a z; a defaults to 1/100 (as in PyTorch)."""

    nargs = (1, 2)

    @classmethod
    def eval(cls, x, a=None):
        if a is None:
            return cls(x, sp.Rational(1, 100))
        if x.is_number and x.is_extended_real:
            return x if x.is_positive else a * x
        return None

    def fdiff(self, argindex=1):
        x, a = self.args
        if argindex == 1:
            return derivative(leaky_relu, x, self, (a,))
        if argindex == 2:
            return x * (1 - step(x))
        raise sp.ArgumentIndexError(self, argindex)

    def _eval_rewrite_as_Piecewise(self, x, a, **kwargs):
        return sp.Piecewise((a * x, x <= 0), (x, True))

    @staticmethod
    def _imp_(x, a=0.01):
        import numpy as np
        return np.where(x > 0, x, a * x)


register_primitive(leaky_relu, name="leaky_relu", deriv=lambda ans, x, a: a + (1 - a) * step(x),
                   deriv2=lambda ans, x, a: 0, prime="leaky_relu'", latex=r"\operatorname{lrelu}",
                   prime_latex=r"\operatorname{lrelu}'",
                   says="leaky_relu'(z) = a + (1 − a) step(z), a for z < 0 and 1 for z > 0",
                   kinked=True, init="he", nargs=(1, 2), defaults=(sp.Rational(1, 100),),
                   code={"numpy": _np_leaky_relu,
                         "python": lambda p, x, a: _py_cond(p, x, "{x}", f"{p.code(a)}*{{x}}")},
                   parse=("leaky_relu",))


# SymPy's own elementwise functions: sympy.diff already knows them; the registrations state the
# rules in terms of ``ans`` for the matrix level, and everything else the engines need.
register_primitive(sp.tanh, name="tanh", deriv=lambda ans, x: 1 - ans**2,
                   deriv2=lambda ans, x: -2 * ans * (1 - ans**2), prime="tanh'", latex=r"\tanh",
                   prime_latex=r"\tanh'", says="tanh'(z) = 1 − tanh²(z)", kinked=False,
                   init="glorot", code=_both("tanh"), parse=("tanh",), sympy_latex=True)
register_primitive(sp.exp, name="exp", deriv=lambda ans, x: ans, deriv2=lambda ans, x: ans,
                   prime="exp'", latex=r"\exp", prime_latex=r"\exp'", says="exp'(z) = exp(z)",
                   kinked=False, code={"numpy": "np.exp({0})", "python": "_exp({0})"},
                   helpers=_PY_FLOATS, parse=("exp",), sympy_latex=True)
register_primitive(sp.log, name="log", deriv=lambda ans, x: 1 / x, deriv2=lambda ans, x: -1 / x**2,
                   prime="log'", latex=r"\log", prime_latex=r"\log'", says="log'(z) = 1/z",
                   kinked=False, code={"numpy": _log_code("np.logaddexp(0, {0})", "np.log1p({0})",
                                                          "np.log({0})"),
                                       "python": _log_code("_softplus({0})", "_log1p({0})",
                                                           "_log({0})")},
                   helpers=_PY_FLOATS, parse=("log", "ln"), sympy_latex=True)
register_primitive(sp.sin, name="sin", deriv=lambda ans, x: sp.cos(x), deriv2=lambda ans, x: -ans,
                   prime="sin'", latex=r"\sin", prime_latex=r"\sin'", says="sin'(z) = cos(z)",
                   kinked=False, code=_both("sin"), parse=("sin",), sympy_latex=True)
register_primitive(sp.cos, name="cos", deriv=lambda ans, x: -sp.sin(x), deriv2=lambda ans, x: -ans,
                   prime="cos'", latex=r"\cos", prime_latex=r"\cos'", says="cos'(z) = −sin(z)",
                   kinked=False, code=_both("cos"), parse=("cos",), sympy_latex=True)
register_primitive(sp.tan, name="tan", deriv=lambda ans, x: 1 + ans**2,
                   deriv2=lambda ans, x: 2 * ans * (1 + ans**2), prime="tan'", latex=r"\tan",
                   prime_latex=r"\tan'", says="tan'(z) = 1 + tan²(z)", kinked=False,
                   code=_both("tan"), parse=("tan",), sympy_latex=True)
register_primitive(sp.asin, name="asin", deriv=lambda ans, x: 1 / sp.sqrt(1 - x**2),
                   deriv2=lambda ans, x: x / (1 - x**2)**sp.Rational(3, 2), prime="asin'",
                   latex=r"\arcsin", prime_latex=r"\arcsin'", says="asin'(z) = 1/√(1 − z²)",
                   kinked=False, code=_both("arcsin", "asin"), parse=("asin",), sympy_latex=True)
register_primitive(sp.acos, name="acos", deriv=lambda ans, x: -1 / sp.sqrt(1 - x**2),
                   deriv2=lambda ans, x: -x / (1 - x**2)**sp.Rational(3, 2), prime="acos'",
                   latex=r"\arccos", prime_latex=r"\arccos'", says="acos'(z) = −1/√(1 − z²)",
                   kinked=False, code=_both("arccos", "acos"), parse=("acos",), sympy_latex=True)
register_primitive(sp.atan, name="atan", deriv=lambda ans, x: 1 / (1 + x**2),
                   deriv2=lambda ans, x: -2 * x / (1 + x**2)**2, prime="atan'", latex=r"\arctan",
                   prime_latex=r"\arctan'", says="atan'(z) = 1/(1 + z²)", kinked=False,
                   code=_both("arctan", "atan"), parse=("atan",), sympy_latex=True)
register_primitive(sp.sinh, name="sinh", deriv=lambda ans, x: sp.cosh(x), deriv2=lambda ans, x: ans,
                   prime="sinh'", latex=r"\sinh", prime_latex=r"\sinh'", says="sinh'(z) = cosh(z)",
                   kinked=False, code={"numpy": "np.sinh({0})", "python": "_sinh({0})"},
                   helpers={"_sinh": _sinh}, parse=("sinh",), sympy_latex=True)
register_primitive(sp.cosh, name="cosh", deriv=lambda ans, x: sp.sinh(x), deriv2=lambda ans, x: ans,
                   prime="cosh'", latex=r"\cosh", prime_latex=r"\cosh'", says="cosh'(z) = sinh(z)",
                   kinked=False, code={"numpy": "np.cosh({0})", "python": "_cosh({0})"},
                   helpers={"_cosh": _cosh}, parse=("cosh",), sympy_latex=True)
register_primitive(sp.erf, name="erf", deriv=lambda ans, x: 2 / sp.sqrt(sp.pi) * sp.exp(-x**2),
                   deriv2=lambda ans, x: -4 * x / sp.sqrt(sp.pi) * sp.exp(-x**2),
                   prime="erf'", latex=r"\operatorname{erf}", prime_latex=r"\operatorname{erf}'",
                   says="erf'(z) = (2/√π) exp(−z²)", kinked=False,
                   code={"numpy": "_np_erf({0})", "python": "math.erf({0})"},
                   helpers={"_np_erf": _np_erf}, parse=("erf",), sympy_latex=True)
# the kinked ones: f' jumps at 0 (abs, sign, Heaviside) or where two arguments meet (max, min)
register_primitive(sp.Abs, name="abs", deriv=lambda ans, x: sp.sign(x), deriv2=lambda ans, x: 0,
                   prime="abs'", latex=r"\operatorname{abs}", prime_latex=r"\operatorname{abs}'",
                   says="abs'(z) = sign(z)", kinked=True,
                   code={"numpy": "np.abs({0})", "python": "abs({0})"}, parse=("abs",),
                   sympy_latex=True)
register_primitive(sp.sign, name="sign", deriv=lambda ans, x: sp.Integer(0),
                   deriv2=lambda ans, x: 0, prime="sign'", latex=r"\operatorname{sign}",
                   prime_latex=r"\operatorname{sign}'", says="sign'(z) = 0 for z ≠ 0", kinked=True,
                   code={"numpy": "np.sign({0})", "python": "_sign({0})"},
                   helpers={"_sign": _sign}, sympy_latex=True)
register_primitive(sp.Heaviside, name="Heaviside", deriv=lambda ans, x, h0: sp.Integer(0),
                   deriv2=lambda ans, x, h0: 0, prime="Heaviside'", latex=r"\theta",
                   prime_latex=r"\theta'", says="θ'(z) = 0 for z ≠ 0", kinked=True,
                   nargs=(1, 2), defaults=(sp.S.Half,),
                   code={"numpy": "np.heaviside({0}, {1})", "python": "_heaviside({0}, {1})"},
                   helpers={"_heaviside": _heaviside}, sympy_latex=True)
class _Lattice:
    """max/min whose derivative does not rebuild the others' max. SymPy's ∂max(x1…xn)/∂xi is
    θ(xi − max(the rest)), and building that max compares every pair of its arguments (with
    factor_terms on each difference): 1.2 s per entry at 32 arguments, 38 s for the Jacobian.
    The rest are a subset of arguments SymPy already found pairwise incomparable, so their max
    is the same object built unevaluated, at once. Used only while differentiating (see
    :func:`differentiate`): results hold SymPy's own Max and Min, equal to a user's."""

    def fdiff(self, argindex=1):
        n = len(self.args)
        if n > 2 and 0 < argindex <= n:
            x, rest = self.args[argindex - 1], self.args[:argindex - 1] + self.args[argindex:]
            others = type(self)(*rest, evaluate=False)
            return sp.Heaviside(x - others) if isinstance(self, sp.Max) \
                else sp.Heaviside(others - x)
        return super().fdiff(argindex)


class _Max(_Lattice, sp.Max):
    pass


class _Min(_Lattice, sp.Min):
    pass


_FAST, _PLAIN = {sp.Max: _Max, sp.Min: _Min}, {_Max: sp.Max, _Min: sp.Min}


def differentiate(expr, x):
    """sp.diff(expr, x), with max/min of many arguments differentiated in linear time."""
    if not expr.has(sp.Max, sp.Min):
        return sp.diff(expr, x)
    fast = expr.replace(lambda e: type(e) in _FAST and len(e.args) > 2,
                        lambda e: _FAST[type(e)](*e.args, evaluate=False))
    return sp.diff(fast, x).replace(lambda e: type(e) in _PLAIN,
                                    lambda e: _PLAIN[type(e)](*e.args, evaluate=False))


register_primitive(sp.Max, name="max", deriv=lambda ans, x, *rest: sp.Heaviside(x - sp.Max(*rest)),
                   prime="max'", latex=r"\max", prime_latex=r"\max'",
                   says="∂max(z, …)/∂z = 1 where z is the largest, else 0", kinked=True,
                   nargs=(2, None), code={"numpy": _fold("np.maximum({0}, {1})"),
                                          "python": _fold("max({0}, {1})")},
                   parse=("max",), sympy_latex=True)
register_primitive(sp.Min, name="min", deriv=lambda ans, x, *rest: sp.Heaviside(sp.Min(*rest) - x),
                   prime="min'", latex=r"\min", prime_latex=r"\min'",
                   says="∂min(z, …)/∂z = 1 where z is the smallest, else 0", kinked=True,
                   nargs=(2, None), code={"numpy": _fold("np.minimum({0}, {1})"),
                                          "python": _fold("min({0}, {1})")},
                   parse=("min",), sympy_latex=True)


# -- cases ----------------------------------------------------------------------------------------
MAX_CASES = 4  # more cases than this read worse than relu'(z) itself: those steps stay as they are


def unfold_steps(expr: sp.Expr, at0, max_cases: int = MAX_CASES) -> sp.Expr:
    """Write the steps in ``expr`` (relu'(z) = step(z), leaky_relu' = a + (1 - a) step) as cases,
    as the notes do: c·step(z) = 0 if z ≤ 0, c otherwise; ``at0`` is relu'(0), the value at 0.

    Only ``step`` is rewritten. relu, leaky_relu and the unit values stay as they are: rewriting a
    forward relu as cases too, then multiplying the branches out, is what made the cases exponential
    in the number of units. The cases are built mutually exclusive (a product of steps is zero as soon
    as one of them is), equal branches are merged, impossible ones dropped (conditions simplified as
    boolean formulas over "z ≤ 0" atoms), and where more than ``max_cases`` would result the steps
    of that part stay written as step(z), which is exact too.
    """
    if not expr.has(step):
        return expr
    atoms: dict = {}
    pieces = _merge(_cases(sp.sympify(expr, strict=True), max_cases, atoms, at0))
    if len(pieces) == 1:
        return pieces[0][0]
    back = {b: rel for rel, b in atoms.items()}
    pieces.sort(key=lambda vc: vc[0] != 0)  # the notes write the zero case first
    args, before = [], sp.false
    for v, c in pieces[:-1]:  # read in order: a case need not repeat what the ones above exclude
        args.append((v, _relational(_given_not(c, before), back)))
        before = sp.Or(before, c)
    return sp.Piecewise(*args, (pieces[-1][0], sp.true))


def step_cases(z, at0) -> list:
    """step(z) as (value, condition) pairs, with relu'(0) = ``at0`` at 0."""
    at0 = check_relu_grad_at_zero(at0)
    if at0 == 0:
        return [(sp.Integer(0), z <= 0), (sp.Integer(1), z > 0)]
    if at0 == 1:
        return [(sp.Integer(0), z < 0), (sp.Integer(1), z >= 0)]
    return [(sp.Integer(0), z < 0), (at0, sp.Eq(z, 0)), (sp.Integer(1), z > 0)]


def _cases(e, limit, atoms, at0) -> list:
    """``e`` as exclusive (value, boolean) pairs over atoms standing for step conditions."""
    if not e.has(step):
        return [(e, sp.true)]
    if isinstance(e, step):
        rels = step_cases(e.args[0], at0)
        bools = [_atom(r, atoms) for _, r in rels[:-1]]
        conds = [sp.And(*[sp.Not(b) for b in bools[:k]], bools[k]) for k in range(len(bools))]
        conds.append(sp.And(*[sp.Not(b) for b in bools]))
        return [(v, c) for (v, _), c in zip(rels, conds)]
    parts = [_cases(a, limit, atoms, at0) for a in e.args]
    if isinstance(e, sp.Mul):  # a zero factor decides alone: the other factors' cases vanish there
        zero = [c for p in parts for v, c in p if v == 0]
        parts = [[(v, c) for v, c in p if v != 0] for p in parts]
    else:
        zero = []
    out = [(sp.Integer(0), sp.Or(*zero))] if zero else []
    combos = [([], sp.Not(sp.Or(*zero)) if zero else sp.true)]
    for p in parts:
        combos = [(vs + [v], sp.And(c, pc)) for vs, c in combos for v, pc in p]
        combos = [(vs, c) for vs, c in combos if _satisfiable(c)]
        if len(combos) + len(out) > limit:
            return _kept(e, atoms, at0)
    out += [(e.func(*vs), c) for vs, c in combos]
    return _merge(out)


def _kept(e, atoms, at0):
    """Too many cases: keep ``e`` with its steps written as step(z); only the steps that multiply
    all of ``e`` still become the one zero case (with relu'(0) = 0 or 1 a step is 0 or 1)."""
    kills = [a for a in e.args if isinstance(a, step)] if isinstance(e, sp.Mul) else []
    if not kills or at0 not in (0, 1):
        return [(e, sp.true)]
    zero = sp.Or(*[_atom(step_cases(k.args[0], at0)[0][1], atoms) for k in kills])
    return [(sp.Integer(0), zero), (e.func(*[a for a in e.args if a not in kills]), sp.Not(zero))]


def _merge(pieces) -> list:
    """Merge branches with the same value; drop branches that cannot happen."""
    by_value: dict = {}
    for v, c in pieces:
        by_value[v] = sp.Or(by_value.get(v, sp.false), c)
    out = []
    for v, c in by_value.items():
        c = _simplify_bool(c)
        if c != sp.false:
            out.append((v, c))
    return out


def _given_not(c, before):
    """Drop the literals of the conjunction ``c`` that add nothing once ``before`` is false."""
    if not isinstance(c, sp.And) or before == sp.false:
        return c
    from sympy.logic.inference import satisfiable
    lits = list(c.args)
    for lit in list(lits):
        shorter = sp.And(*[x for x in lits if x is not lit])
        if not satisfiable(sp.And(sp.Not(before), sp.Xor(shorter, c))):
            lits.remove(lit)
    return sp.And(*lits)


def _atom(rel, atoms):
    if rel not in atoms:
        atoms[rel] = sp.Dummy(f"c{len(atoms)}")
    return atoms[rel]


def _simplify_bool(c):
    if len(c.free_symbols) <= 8:  # simplify_logic is exponential in the atoms
        return sp.simplify_logic(c)
    return c


def _satisfiable(c) -> bool:
    from sympy.logic.inference import satisfiable
    return c == sp.true or bool(satisfiable(c))


def _relational(c, back):
    """A boolean over atoms back to relationals: ¬(z ≤ 0) is written z > 0."""
    if c in back:
        return back[c]
    if isinstance(c, sp.Not) and c.args[0] in back:
        return back[c.args[0]].negated
    if isinstance(c, (sp.And, sp.Or)):
        return c.func(*[_relational(a, back) for a in c.args])
    return c
