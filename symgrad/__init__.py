"""symgrad: symbolic Jacobians and gradients, derived step by step, printed and compiled.

Pipeline (imports flow one way): declare (parse, functions) → derive (calculus, network) →
simplify → compile → train, and derive → print → handout.
"""
from symgrad.derive.calculus import (Fn, chain, derive_gradient, derive_jacobian, derive_matrix_gradient,
                       derive_vec_jacobian, gradient, jacobian, matrix_symbols, unvec, vec)
from symgrad.derive.hessian import derive_hessian
from symgrad.core.derivation import Derivation, Step, StepKind
from symgrad.core.primitives import (MissingRuleError, defderiv, leaky_relu, relu, set_relu_grad_at_zero,
                        sigmoid, softplus, step)
from symgrad.network import Network, activation, load_network, mlp
from symgrad.core.parse import ParseError, parse, parse_symbols
from symgrad.handouts.build import handout  # noqa: E402  (derive → print → handout)
from symgrad.printing.latex import to_latex
from symgrad.compile import compile_function  # noqa: E402  (derive → compile → train)
# a network as a torch.nn.Module with the derived backward (torch imported when called)
from symgrad.compile.torch_module import to_torch
# matrix calculus from text: sg.grad("x'*A*x", "x", vectors="x", matrices="A")
from symgrad.compile.mfunction import MatrixDerivation, derivative, grad
from symgrad.compile.mfunction import hessian as _matrix_hessian
from symgrad.core.mlang import parse_matrix
from symgrad.run.check import gradcheck
from symgrad.run.train import TrainingDiverged, TrainingWarning, load_params, save_params, train
# one registration per kind of extension: a graph op, a backend, a notation preset
from symgrad.graph.ops import Op, register_op
from symgrad.graph.attention import from_torch_mha
from symgrad.compile.backends import Backend, register_backend
from symgrad.printing.names import Notation, register_notation
from symgrad.core.primitives import MissingCodeError, PrimitiveSpec, register_primitive
from symgrad.graph.activations import register_activation

__version__ = "0.1.0"


def hessian(f, wrt, *, name: str = "f", vectors="", matrices="", symmetric="", scalars="",
            sizes=None) -> Derivation:
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
    if vectors or matrices or symmetric or scalars or sizes:
        return _matrix_hessian(f, wrt, vectors=vectors, matrices=matrices, symmetric=symmetric,
                               scalars=scalars, sizes=sizes)
    return derive_hessian(f, wrt, name=name)


# For reading symgrad's JSON strings back: sympy.sympify(s, locals=SYMPIFY_LOCALS): symgrad's own
# primitive classes by name (sigmoid, relu, softplus, leaky_relu, step), kept by register_primitive
from symgrad.core.primitives import SYMPIFY_LOCALS  # noqa: E402

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
