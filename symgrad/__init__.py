"""symgrad: symbolic Jacobians and gradients, derived step by step, printed and compiled.

Pipeline (imports flow one way): declare (parse, functions) → derive (calculus, network) →
simplify → compile → train, and derive → print → handout.

The names below are loaded on first use (PEP 562): ``import symgrad`` alone imports nothing, and
the first ``sg.mlp``, ``from symgrad import grad`` or ``dir(symgrad)`` imports the whole facade at
once, as ``import symgrad`` used to, so every registration (ops, backends, notations) is made
before any name is used. Why (issue 15): the facade is SymPy and numpy, 0.65 s of imports, and the
console script (``from symgrad.cli import main``) imports this package first, so ``symgrad --help``
took 0.87 s; the CLI imports the engine only when a command runs (symgrad.cli._engine).
"""

__version__ = "0.1.0"

__all__ = [
    "parse", "parse_symbols", "ParseError", "jacobian", "gradient", "derive_jacobian",
    "derive_gradient", "hessian", "derive_hessian",
    "chain", "Fn", "vec", "unvec", "matrix_symbols", "derive_vec_jacobian",
    "derive_matrix_gradient", "Derivation", "Step", "StepKind", "sigmoid", "relu", "softplus", "leaky_relu",
    "step", "defderiv", "SYMPIFY_LOCALS", "Network", "mlp", "activation", "load_network", "set_relu_grad_at_zero", "MissingRuleError",
    "handout", "to_latex",
    "compile_function", "to_torch", "gradcheck", "train", "save_params", "load_params", "TrainingWarning",
    "TrainingDiverged",
    "Op", "register_op", "Backend", "register_backend", "Notation", "register_notation",
    "PrimitiveSpec", "register_primitive", "MissingCodeError", "register_activation",
    "from_torch_mha", "grad", "derivative", "MatrixDerivation", "parse_matrix",
]

_loading = _loaded = False


def _load() -> None:
    """Import the facade into this package's namespace (once; later calls return at once).

    The submodules' own imports (``from symgrad.derive import calculus``) never come here: they
    find the package in sys.modules and set its attribute ``derive`` themselves."""
    global _loading, _loaded
    if _loading or _loaded:  # done, or under way (a submodule asking for a name)
        return
    _loading = True
    try:
        from symgrad.derive.calculus import (Fn, chain, derive_gradient, derive_jacobian,  # noqa: F401
                                             derive_matrix_gradient, derive_vec_jacobian, gradient,
                                             jacobian, matrix_symbols, unvec, vec)
        from symgrad.derive.hessian import derive_hessian  # noqa: F401
        from symgrad.core.derivation import Derivation, Step, StepKind  # noqa: F401
        from symgrad.core.primitives import (MissingRuleError, defderiv, leaky_relu, relu,  # noqa: F401
                                             set_relu_grad_at_zero, sigmoid, softplus, step)
        from symgrad.network import Network, activation, load_network, mlp  # noqa: F401
        from symgrad.core.parse import ParseError, parse, parse_symbols  # noqa: F401
        from symgrad.handouts.build import handout  # noqa: F401  (derive → print → handout)
        from symgrad.printing.latex import to_latex  # noqa: F401
        from symgrad.compile import compile_function  # noqa: F401  (derive → compile → train)
        # a network as a torch.nn.Module with the derived backward (torch imported when called)
        from symgrad.compile.torch_module import to_torch  # noqa: F401
        # matrix calculus from text: sg.grad("x'*A*x", "x", vectors="x", matrices="A")
        from symgrad.compile.mfunction import MatrixDerivation, derivative, grad  # noqa: F401
        from symgrad.compile.mfunction import hessian as _matrix_hessian  # noqa: F401
        from symgrad.core.mlang import parse_matrix  # noqa: F401
        from symgrad.run.check import gradcheck  # noqa: F401
        from symgrad.run.train import (TrainingDiverged, TrainingWarning, load_params,  # noqa: F401
                                       save_params, train)
        # one registration per kind of extension: a graph op, a backend, a notation preset
        from symgrad.graph.ops import Op, register_op  # noqa: F401
        from symgrad.graph.attention import from_torch_mha  # noqa: F401
        from symgrad.compile.backends import Backend, register_backend  # noqa: F401
        from symgrad.printing.names import Notation, register_notation  # noqa: F401
        from symgrad.core.primitives import MissingCodeError, PrimitiveSpec, register_primitive  # noqa: F401
        from symgrad.graph.activations import register_activation  # noqa: F401
        # For reading symgrad's JSON strings back: sympy.sympify(s, locals=SYMPIFY_LOCALS):
        # symgrad's own primitive classes by name (sigmoid, relu, softplus, leaky_relu, step),
        # kept by register_primitive
        from symgrad.core.primitives import SYMPIFY_LOCALS  # noqa: F401
        globals().update(locals())
        _loaded = True
    finally:
        _loading = _loaded = False


def __getattr__(name: str):
    """A facade name's first use loads the facade (PEP 562); anything else is missing as usual.
    A dunder (a tool probing for __wrapped__ or __test__) is none of the facade's names: it is
    missing at once, without loading SymPy."""
    if not (name.startswith("__") and name.endswith("__")):
        _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'symgrad' has no attribute {name!r}") from None


def __dir__():
    _load()
    return sorted(globals())


def hessian(f, wrt, *, name: str = "f", vectors="", matrices="", symmetric="", scalars="",
            sizes=None) -> "Derivation":
    """The Hessian ∇²f of a scalar f, derived step by step.

    In the scalar language (no ``vectors``/``matrices``/``symmetric``/``sizes``): a Derivation
    whose ``result`` is the symmetric m×m matrix of second partials (entry (i, j) is
    ∂²f/∂x_i∂x_j), its steps the gradient, then each row as the Jacobian of one entry of the
    gradient; only the upper triangle is derived (second partials commute). ``f`` is text
    (parsed by :func:`parse`, never evaluated) or a SymPy expression; ``wrt`` the variables, as
    text ("x y" or "x,y"), a sequence or a Matrix of symbols; ``name`` names f in the steps.

    In the matrix language (any of those keywords given, as for :func:`grad`): the Hessian in
    matrix form (``sg.hessian("x'*A*x", "x", vectors="x", matrices="A").result`` is A + Aᵀ), a
    :class:`MatrixDerivation` whose ``compile()`` returns (f, ∇f, H)."""
    _load()  # (a def of this module: reached without __getattr__)
    if vectors or matrices or symmetric or scalars or sizes:
        return _matrix_hessian(f, wrt, vectors=vectors, matrices=matrices, symmetric=symmetric,  # noqa: F821
                               scalars=scalars, sizes=sizes)
    return derive_hessian(f, wrt, name=name)  # noqa: F821
