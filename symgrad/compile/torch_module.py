"""A network as a ``torch.nn.Module`` whose backward is the derived one: :func:`to_torch`.

Where it sits: compile, above :mod:`.torch_backend` (whose printer writes both functions here).
The module's forward is the derived forward pass; its backward a ``torch.autograd.Function``
running the derived backward pass as a vector-Jacobian product: the program of the network with
the loss ⟨ŷ, G⟩ (a user loss ``yhat*y``, so the g the backward pass starts from at the output is
exactly the incoming gradient G, with no 1/n), plus the gradient reaching the input (each
consumer of X's own VJP rule, in batch form), so a torch layer before the block is trained too.
Autograd records nothing inside: the gradients are the derived ones. Parameters are
``nn.Parameter``s named as in ``net.parameters`` (W1, b1, …; W (d_out, d_in) as torch's
``nn.Linear.weight``), so torch optimizers, ``state_dict``, ``.to(device)`` and ``.double()`` work.
"""
from __future__ import annotations

import copy

import sympy as sp

from symgrad.core.matexpr import batch
from symgrad.core.program import Kind
from symgrad.compile.arrays import _live, check_program, print_function, supported
from symgrad.compile.common import exec_generated, legend
from symgrad.compile.spec import Spec
from symgrad.compile.torch_backend import TorchRuntime, _printer_class
from symgrad.derive import backprop
from symgrad.graph.ops import op_of

_LINEAR = "yhat*y"  # ⟨ŷ, G⟩ summed: its gradient at ŷ is G itself


def vjp_program(net):
    """(the network with the loss ⟨ŷ, y⟩, its typed program, [(lhs, rhs)] of the VJP with the
    start at the output replaced by y = G, the input's gradient's symbol)."""
    vnet = copy.deepcopy(net)
    vnet.set_loss(vnet.output_node, _LINEAR)
    typed = backprop.program(vnet)
    y = typed.target.sym
    stmts = []
    for e in typed.eqns:
        if e.out.kind is Kind.LOSS:
            continue
        if e.out.kind is Kind.BACKWARD and e.out.of == vnet.output_node:
            stmts.append((e.out.sym, y))  # g at the output is the incoming gradient
            continue
        stmts.append((e.out.sym, e.rhs))
    # the gradient reaching the input: each consumer's VJP rule, in the program's symbols
    rows, params = {}, {vnet.sym(v.of): v.sym for v in typed.params}
    for v in typed.variables:
        if v.kind in (Kind.INPUT, Kind.FORWARD):
            rows[vnet.sym(v.of)] = v.sym
        elif v.kind is Kind.BACKWARD:
            rows[backprop.g_symbol(vnet, v.of)] = v.sym
    x = vnet.inputs[0]
    terms = []
    for c in vnet.consumers(x):
        node = vnet.nodes[c]
        for target, term, _ in op_of(node, "the backward pass").vjp(vnet, node,
                                                                   backprop.g_symbol(vnet, c)):
            if target == x:
                terms.append(batch(term, rows, backprop.rows_of(vnet, x)).xreplace(params))
    gx = sp.MatrixSymbol("gx", typed.inputs[0].sym.shape[0], typed.inputs[0].sym.shape[1])
    stmts.append((gx, sp.MatAdd(*terms) if len(terms) > 1 else terms[0]))
    return vnet, typed, stmts, gx


class _Compiled:
    """The two generated torch functions of a block: ``forward(*params, X) -> output`` and
    ``vjp(*params, X, G) -> (G_X, grads…)``."""

    def __init__(self, net, at0):
        supported(net, "torch")
        if len(net.inputs) != 1:  # (the block's backward gives one input's gradient)
            raise ValueError(f"to_torch: a block of one vector input; this one has "
                             f"{len(net.inputs)} inputs (net.compile(backend='torch') takes them)")
        vnet, typed, stmts, gx = vjp_program(net)
        check_program(typed, "torch")
        spec = Spec(vnet, typed, at0)
        rt = TorchRuntime()
        printer = _printer_class()({"relu_grad_at_zero": at0})
        args = [v.sym.name for v in typed.params] + [typed.inputs[0].sym.name]
        out = typed.forward_of(vnet.output_node).sym
        fsrc = print_function("forward", printer, spec, typed,
                              _live([(e.out.sym, e.rhs) for e in typed.of_kind(Kind.FORWARD)],
                                    {out}), args, [out.name])
        grads = typed.gradients
        vsrc = legend(typed) + print_function(
            "vjp", printer, spec, typed, _live(stmts, {gx} | {v.sym for v in grads.values()}),
            args + [typed.target.sym.name], [gx.name],
            [(grads[p].sym, spec.shapes[p]) for p in spec.names])
        self.forward = rt.wrap(exec_generated(fsrc, "forward", rt.namespace()))
        self.vjp = rt.wrap(exec_generated(vsrc, "vjp", rt.namespace()))
        self.source = fsrc + "\n" + vsrc
        self.names, self.shapes, self.d_in = spec.names, spec.shapes, spec.d_in
        self.d_out = vnet.nodes[vnet.output_node].dim


def to_torch(net, params=None, *, dtype=None, device=None, seed: int = 0):
    """``net`` as a ``torch.nn.Module``: ``module(X)`` is the network's output for the rows of X
    (n, d_in), differentiable by the derived backward pass (parameters and X). ``params``: the
    starting values (a dict of arrays or tensors named as ``net.parameters``; default
    ``net.init_params(seed)``), made ``nn.Parameter``s of ``dtype`` (default torch's default
    dtype) on ``device``. ``module.source`` is the generated code.

    X must be a torch tensor on the parameters' device; one of another floating dtype is cast to
    the parameters' dtype (as ``net.compile(backend="torch")`` does), so a float64 X into a
    float32 module computes in float32. First derivatives only: the backward pass is the derived
    VJP, which autograd does not record, so a double backward (``torch.autograd.grad(...,
    create_graph=True)`` then differentiating again, ``gradgradcheck``, Hessian-vector products)
    raises a RuntimeError saying so, instead of silently returning gradients without their
    second-order terms."""
    import torch

    at0 = net.relu_grad_at_zero
    compiled = _Compiled(net, at0)

    class Derived(torch.autograd.Function):
        @staticmethod
        def forward(ctx, X, *ps):
            ctx.save_for_backward(X, *ps)
            return compiled.forward(*ps, X)[0]

        @staticmethod
        def backward(ctx, G):
            X, *ps = ctx.saved_tensors
            gx, *gs = compiled.vjp(*ps, X, G.to(X.dtype))  # (runs under no_grad: not recorded)
            outs = (gx if ctx.needs_input_grad[0] else None, *gs)
            if torch.is_grad_enabled():  # create_graph=True: a second backward may follow
                outs = tuple(None if o is None else _FirstOrderOnly.apply(o, G, X, *ps)
                             for o in outs)
            return outs

    class _FirstOrderOnly(torch.autograd.Function):
        """The derived VJP's results under create_graph=True, tied to what they depend on so that
        differentiating them again raises. (torch's once_differentiable does not: it checks only
        whether G requires grad, and G = ones from ``.sum()`` does not, so the gradient came back
        with requires_grad=False and second derivatives were silently missing.)"""

        @staticmethod
        def forward(ctx, out, *deps):
            return out.clone()

        @staticmethod
        def backward(ctx, *_):
            raise RuntimeError("to_torch: a symgrad block is differentiable once; its backward is "
                               "the derived VJP, which autograd does not record, so second "
                               "derivatives (double backward, gradgradcheck) are not available")

    class SymgradModule(torch.nn.Module):
        """A symgrad network: forward the derived forward pass, backward the derived one."""

        def __init__(self):
            super().__init__()
            start = net.init_params(seed) if params is None else params
            missing = [p for p in compiled.names if p not in start]
            if missing or len(start) != len(compiled.names):
                raise ValueError(f"params: expected exactly {', '.join(compiled.names)}")
            for p in compiled.names:
                if "." in p or not p:
                    raise ValueError(f"to_torch: the parameter name {p!r} cannot name a torch "
                                     "parameter (no dots)")
                t = torch.as_tensor(start[p]).detach().clone().to(
                    dtype=dtype or torch.get_default_dtype(), device=device)
                if tuple(t.shape) != tuple(compiled.shapes[p]):
                    raise ValueError(f"params[{p!r}] has shape {tuple(t.shape)}; expected "
                                     f"{compiled.shapes[p]}")
                self.register_parameter(p, torch.nn.Parameter(t))
            self.source = compiled.source

        def forward(self, X):
            ps = [getattr(self, p) for p in compiled.names]
            if not isinstance(X, torch.Tensor):
                raise TypeError(f"X must be a torch tensor, got {type(X).__module__}."
                                f"{type(X).__name__} (torch.as_tensor(X) converts it)")
            if X.ndim != 2 or X.shape[1] != compiled.d_in:
                raise ValueError(f"X has shape {tuple(X.shape)}; expected (n, {compiled.d_in}), "
                                 "one example a row")
            if X.device != ps[0].device:
                raise ValueError(f"X is on {X.device} but the parameters are on {ps[0].device}")
            # X in the parameters' dtype, as net.compile(backend="torch") does (its gradient
            # flows back through the cast in X's own dtype)
            return Derived.apply(X.to(ps[0].dtype), *ps)

        def extra_repr(self):
            return f"in={compiled.d_in}, out={compiled.d_out}, parameters={', '.join(compiled.names)}"

    return SymgradModule()


__all__ = ["to_torch", "vjp_program"]
