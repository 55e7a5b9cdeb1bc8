"""Compiling derived gradients to numpy: network kernels, and plain functions with their Jacobians.

Where it sits: derive → simplify → **compile** → train. ``backprop.algorithm(net)`` gives the batch
program; :mod:`.numpy_printer` (a SymPy ``NumPyPrinter``) prints its matrix expressions as numpy,
:mod:`.emit` turns the program into statements (shared subexpressions once, dead temporaries
updated in place, products on BLAS), and :mod:`.kernel` execs them into ``kernel(params, X, Y) ->
(loss, grads)``, checked by :mod:`.spec`. Tiny networks get a second code path, :mod:`.scalar`,
unrolled into Python floats per batch size. :mod:`.function` compiles any function of a few
variables and its Jacobian, vectorized over points, in the stable forms of :mod:`.forms` (one
table of rewrites: log σ(x) as −softplus(−x), log(eˣ + eʸ) as logsumexp, …); :mod:`.source`
writes a matrix of expressions (a Hessian) as the text of one Python function on floats. Imports
inside flow one way: common is imported by all and imports none of them; numpy_printer, emit, spec
and scalar by kernel; numpy_printer and forms by function, forms and scalar by source; nothing
imports kernel, function or source but this file and the CLI. The array backends (JAX, PyTorch,
CuPy) print the same program functionally: :mod:`.arrays` (their printer and kernel builder),
one module each ending in its ``register_backend`` line (:mod:`.jax_backend`,
:mod:`.torch_backend`, :mod:`.cupy_backend`, each with one table of per-primitive code), and
:mod:`.torch_module` (``sg.to_torch``: an nn.Module whose backward is the derived one); none
imports its framework before a kernel is built.
"""
from symgrad.compile.common import FLOATS, N, XMAX, stable
from symgrad.compile.function import CompiledFunction, compile_function
from symgrad.compile.kernel import SCALAR_WORK, compile_network, predict, program
from symgrad.compile.numpy_printer import KernelPrinter
from symgrad.compile.scalar import ScalarPrinter
from symgrad.compile.spec import Spec, init_params, param_shapes
# the array backends: each module ends with its register_backend line (and imports its framework
# only when a kernel is built)
from symgrad.compile import jax_backend, torch_backend, cupy_backend  # noqa: F401,E402

__all__ = ["FLOATS", "N", "XMAX", "SCALAR_WORK", "CompiledFunction", "KernelPrinter",
           "ScalarPrinter", "Spec", "compile_function", "compile_network", "init_params",
           "param_shapes", "predict", "program", "stable"]
