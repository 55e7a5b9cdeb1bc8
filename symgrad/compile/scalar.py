"""The unrolled scalar path for tiny networks: the batch program, entry by entry, on Python floats.

Where it sits: compile, a second code path beside the numpy kernel of :mod:`.kernel`, generated from
the same program for one batch size at a time. For a 2-2-1 net numpy's per-call overhead, not
arithmetic, is the cost; plain Python float arithmetic avoids it.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from symgrad.core.matexpr import (Elementwise, Gather, LogSumExp, Normalize, NormalizeVJP,
                                  ScatterAdd, Softmax, SoftmaxVJP, SumAll)
from symgrad.compile.common import N, PrimitivePrinting, lambda_body, exec_generated, legend


class ScalarPrinter(PrimitivePrinting, PythonCodePrinter):
    """One entry at a time, on Python floats (the unrolled path): every primitive by its
    registered "python" code, in forms that neither overflow nor raise (``_exp``, ``_log``,
    ``_sigmoid``, ``_softplus``: symgrad.core.primitives)."""

    _default_settings = {**PythonCodePrinter._default_settings, "relu_grad_at_zero": 0}
    backend, modules = "python", ("math.",)

    def _print_Symbol(self, e):
        return e.name

    _print_Dummy = _print_Symbol

    def _print_Pow(self, e, rational=False):
        if e.exp == -1:
            return f"1/{self.parenthesize(e.base, 60)}"
        if e.exp == 2 and isinstance(e.base, sp.Symbol):
            # in parentheses: the printer writes a Pow after '/' unparenthesized, and a/x*x is
            # (a/x)*x (the gradient of a loss with 1/ŷ in it was off by a factor ŷ²)
            return f"({e.base.name}*{e.base.name})"
        return super()._print_Pow(e, rational)


class _Unroller:
    """The batch program at a fixed n, entry by entry: one Python assignment per nonconstant
    entry, a stable max-shifted softmax per row."""

    def __init__(self, n, at0=0):
        self.n, self.env, self.lines, self.rows = n, {}, [], {}
        self.p = ScalarPrinter({"order": "none",  # terms as built: sorting them is slow
                                "relu_grad_at_zero": at0})

    def define(self, name, v):
        if v.is_Atom:
            return v
        self.lines.append(f"{name} = {self.p.doprint(v)}")
        return sp.Symbol(name)

    def assign(self, lhs, rhs):
        self.env[lhs] = [[self.define(f"{lhs.name}_{i}_{j}", v) for j, v in enumerate(row)]
                         for i, row in enumerate(self.entries(rhs))]

    def row(self, z):
        if z not in self.rows:
            out = []
            for i, zs in enumerate(self.entries(z)):
                tag = f"_{z.name}_{i}"
                m = self.define("m" + tag, sp.Max(*zs)) if len(zs) > 1 else zs[0]
                es = [self.define(f"e{tag}_{k}", sp.exp(x - m)) for k, x in enumerate(zs)]
                out.append((m, self.define("s" + tag, sp.Add(*es)), es))
            self.rows[z] = out
        return self.rows[z]

    def norm_row(self, z, eps):
        """Each example's (entries − mean, 1/√(var + ε)) for layer norm, once per z."""
        key = (z, eps)
        if key not in self.rows:
            out = []
            for i, zs in enumerate(self.entries(z)):
                tag = f"_n{len(self.rows)}_{i}"
                mu = self.define("mu" + tag, sp.Add(*zs) / len(zs))
                cs = [self.define(f"c{tag}_{k}", x - mu) for k, x in enumerate(zs)]
                inv = self.define("inv" + tag, 1 / sp.sqrt(sp.Add(*[c ** 2 for c in cs])
                                                           / len(cs) + eps))
                out.append((cs, inv))
            self.rows[key] = out
        return self.rows[key]

    def normalize(self, e):
        if isinstance(e, Normalize):
            return [[c * inv for c in cs] for cs, inv in self.norm_row(e.args[0], e.args[1])]
        xh, z, g, eps = (self.entries(a) if i < 3 else a for i, a in enumerate(e.args[:4]))
        out = []
        for (cs, inv), x, gr in zip(self.norm_row(e.args[1], eps), xh, g):
            d = len(gr)
            mg = self.define(f"_mg{len(self.lines)}", sp.Add(*gr) / d)
            mxg = self.define(f"_mxg{len(self.lines)}", sp.Add(*[a * b for a, b in zip(x, gr)]) / d)
            out.append([inv * (b - mg - a * mxg) for a, b in zip(x, gr)])
        return out

    def entries(self, e):
        if isinstance(e, sp.MatrixSymbol):
            return self.env[e]
        if isinstance(e, sp.OneMatrix):
            return [[sp.S.One] * int(e.shape[1].subs(N, self.n))
                    for _ in range(int(e.shape[0].subs(N, self.n)))]
        if isinstance(e, sp.Transpose):
            return [list(c) for c in zip(*self.entries(e.arg))]
        if isinstance(e, sp.MatMul):
            c, mats = e.as_coeff_matrices()
            M = self.entries(mats[0])
            for m in mats[1:]:
                B = self.entries(m)
                M = [[sp.Add(*[a * B[k][j] for k, a in enumerate(r)]) for j in range(len(B[0]))]
                     for r in M]
            c = sp.sympify(c, strict=True).subs(N, self.n)
            return [[c * x for x in r] for r in M]
        if isinstance(e, (sp.MatAdd, sp.HadamardProduct)):
            op = sp.Add if isinstance(e, sp.MatAdd) else sp.Mul
            parts = [self.entries(a) for a in e.args]
            return [[op(*[p[i][j] for p in parts]) for j in range(len(parts[0][0]))]
                    for i in range(len(parts[0]))]
        if isinstance(e, sp.HadamardPower):
            return [[x ** e.args[1] for x in r] for r in self.entries(e.args[0])]
        if isinstance(e, Elementwise):
            reals, body = lambda_body(e.lam)
            ops = [self.entries(o) for o in e.operands]
            return [[body.xreplace({r: o[i][j] for r, o in zip(reals, ops)})
                     for j in range(len(ops[0][0]))] for i in range(len(ops[0]))]
        if isinstance(e, Softmax):
            return [[x / s for x in es] for _, s, es in self.row(e.args[0])]
        if isinstance(e, LogSumExp):
            return [[m + sp.log(s)] for m, s, _ in self.row(e.args[0])]
        if isinstance(e, SoftmaxVJP):
            Y, G = self.entries(e.args[0]), self.entries(e.args[1])
            dots = [self.define(f"_dot{len(self.lines)}", sp.Add(*[a * b for a, b in zip(y, g)]))
                    for y, g in zip(Y, G)]
            return [[a * (b - d) for a, b in zip(y, g)] for y, g, d in zip(Y, G, dots)]
        if isinstance(e, SumAll):
            return [[sp.Add(*[x for r in self.entries(e.args[0]) for x in r])]]
        if isinstance(e, (Normalize, NormalizeVJP)):
            return self.normalize(e)
        if isinstance(e, sp.BlockMatrix):
            rows = []
            for brow in e.blocks.tolist():
                parts = [self.entries(b) for b in brow]
                rows += [sum((p[i] for p in parts), []) for i in range(len(parts[0]))]
            return rows
        if isinstance(e, sp.MatrixSlice):
            M = self.entries(e.parent)
            (r0, r1, rs), (c0, c1, cs) = ((int(v.subs(N, self.n)) if isinstance(v, sp.Basic)
                                           else int(v) for v in s)
                                          for s in (e.rowslice, e.colslice))
            return [row[c0:c1:cs] for row in M[r0:r1:rs]]
        if hasattr(e, "unroll"):  # a product across positions (core.sequence)
            return e.unroll(self.entries(e.x), self.entries(e.y))
        if isinstance(e, (Gather, ScatterAdd)):
            return self.embedding(e)
        if hasattr(e, "batched"):  # a node of its own batch form (core.conv): by its entries
            args = [sp.ImmutableMatrix(self.entries(a)) if isinstance(a, sp.MatrixExpr) else a
                    for a in e.args]
            return e.func(*args).as_explicit().tolist()
        raise NotImplementedError(f"the scalar path cannot unroll {type(e).__name__}")

    def embedding(self, e):
        """An embedding's lookup or index-add: the tokens are known only when the code runs, so
        the table is a tuple of rows indexed by each token, and the gradient rows are lists each
        example's g is added into (never a one-hot product, here either)."""
        k = len(self.lines)
        if isinstance(e, Gather):
            E, tok = self.entries(e.args[0]), self.entries(e.args[1])
            if ("table", e.args[0]) not in self.rows:
                rows = ", ".join("(" + "".join(f"{self.p.doprint(v)}, " for v in r) + ")"
                                 for r in E)
                self.lines.append(f"_t{k} = ({rows},)")
                self.rows[("table", e.args[0])] = f"_t{k}"
            table, out = self.rows[("table", e.args[0])], []
            for i, (t,) in enumerate(tok):
                names = [f"_e{k}_{i}_{j}" for j in range(len(E[0]))]
                self.lines.append(f"{', '.join(names)}, = {table}[{self.p.doprint(t)}]")
                out.append([sp.Symbol(x) for x in names])
            return out
        G, tok, V = self.entries(e.args[0]), self.entries(e.args[1]), int(e.args[2])
        d = len(G[0])
        self.lines.append(f"_s{k} = [[0.0] * {d} for _ in range({V})]")
        for (t,), g in zip(tok, G):
            self.lines.append(f"_r = _s{k}[{self.p.doprint(t)}]; " + "; ".join(
                f"_r[{j}] += {self.p.doprint(v)}" for j, v in enumerate(g)))
        names = [[f"_s{k}_{v}_{j}" for j in range(d)] for v in range(V)]
        self.lines.append(f"{', '.join(x for r in names for x in r)}, = "
                          f"[x for r in _s{k} for x in r]")
        return [[sp.Symbol(x) for x in r] for r in names]


def scalar_function(spec, typed, n):
    """``f(*params, *inputs, Y, dt) -> (loss, grads)`` unrolled for batch size n (Python floats
    inside, arrays of dtype dt out), or None when an argument holds nan or inf (the caller then
    says which)."""
    u = _Unroller(n, spec.relu_grad_at_zero)
    args = [f"_p{i}" for i in range(len(spec.names))]
    xargs = [f"_X{i}" for i in range(len(spec.Xs))]
    yargs = [f"_Y{i}" for i in range(len(spec.Ys))] if spec.several else ["_Y"]
    head = [f"def kernel_n{n}({', '.join(args + xargs + yargs)}, _dt):"]
    floats = []

    def unpack(sym, arg, shape, indent="    "):
        names = [[f"{sym.name}_{i}_{j}" for j in range(shape[1])] for i in range(shape[0])]
        u.env[sym] = [[sp.Symbol(x) for x in r] for r in names]
        floats.extend(x for r in names for x in r)
        return f"{indent}{', '.join('(' + ', '.join(r) + ',)' for r in names)}, = {arg}.tolist()"

    def finite(indent="    "):  # nan or inf anywhere makes the sum nan or inf (or a huge sum
        check = f"{indent}if not _isfinite({' + '.join(floats)}):"  # overflows: numpy redoes it)
        floats.clear()
        return [check, f"{indent}    return None"]

    for v, p, a in zip(typed.params, spec.names, args):
        sym = v.sym  # a generated name (p0, p1 …): the user's name p is never code
        if len(spec.shapes[p]) == 1:
            names = [f"{sym.name}_{i}_0" for i in range(sym.shape[0])]
            u.env[sym] = [[sp.Symbol(x)] for x in names]
            floats.extend(names)
            head.append(f"    {', '.join(names)}, = {a}.tolist()")
        elif len(spec.shapes[p]) > 2:  # a conv weight (O, C, kh, kw): the O × C·kh·kw matrix
            head.append(unpack(sym, f"{a}.reshape{tuple(sym.shape)}", tuple(sym.shape)))
        else:
            head.append(unpack(sym, a, spec.shapes[p]))
    for X, a, d, i in zip(spec.Xs, xargs, spec.d_ins, spec.inputs):
        if i in spec.images:  # (n, C, H, W): its (n, C·H·W) rows
            a = f"{a}.reshape({n}, {d})"
        if i in spec.tokens:  # (n,) integers: each one a Python int, indexing a table's rows
            u.env[X] = [[sp.Symbol(f"{X.name}_{r}_0")] for r in range(n)]
            head.append(f"    {', '.join(f'{X.name}_{r}_0' for r in range(n))}, = {a}.tolist()")
        else:  # (n/T rows for a mask after a flatten of sequences: one a sequence)
            head.append(unpack(X, a, (int(X.shape[0].subs(N, n)), d)))
    head += finite()
    head += _unpack_targets(spec, n, unpack, finite)
    for e in typed.eqns:
        u.assign(e.out.sym, e.rhs)
    return exec_generated(legend(typed) + "\n".join(head + _results(spec, typed, u)) + "\n", f"kernel_n{n}",
                 dict(np=np, math=math, _spec=spec, _isfinite=math.isfinite, **{f"_k{i}": p for i, p in enumerate(spec.names)}))


def _unpack_targets(spec, n, unpack, finite):
    """Y's entries as Python floats: from an (n, d) array, or one-hot from integer labels."""
    Y = spec.Y
    rows = lambda Yk: int(Yk.shape[0].subs(N, n))  # noqa: E731  (n/T: an output after a flatten)
    if spec.several:  # one (n, k) float array per output (labels were made one-hot)
        return [line for k, (Yk, d) in enumerate(zip(spec.Ys, spec.d_outs))
                for line in [unpack(Yk, f"_Y{k}", (rows(Yk), d))] + finite()]
    n = rows(Y)
    if not spec.labels:
        return [unpack(Y, "_Y", (n, spec.d_out))] + finite()
    lines = ["    if _Y.ndim == 2:", f"        _spec.rows(_Y, {n}, _dt)",  # rows must sum to 1
             unpack(Y, "_Y", (n, spec.d_out), "        ")]
    lines += finite("        ") + ["    else:", "        _ls = _Y.tolist()",
                                   f"        if min(_ls) < 0 or max(_ls) >= {spec.d_out}:",
                                   f"            _spec.rows(_Y, {n}, _dt)",
                                   f"        {', '.join(f'_l{i}' for i in range(n))}, = _ls"]
    return lines + [f"        {Y.name}_{i}_{k} = 1.0 if _l{i} == {k} else 0.0"
                    for i in range(n) for k in range(spec.d_out)]


def _results(spec, typed, u):
    """The unrolled statements, then the loss and the gradients as views of one flat array."""
    grads = typed.gradients
    flat = [v for p in spec.names for r in u.env[grads[p].sym] for v in r]
    p, k, outs = u.p, 0, []
    for i, name in enumerate(spec.names):
        size = math.prod(spec.shapes[name])
        view = f"_g[{k}:{k + size}]" + (f".reshape{spec.shapes[name]}"
                                          if len(spec.shapes[name]) >= 2 else "")
        outs.append(f"_k{i}: {view}")  # _k<i>: the user's parameter name, from the namespace
        k += size
    body = [f"    {line}" for line in u.lines]
    return body + [f"    _g = np.array([{', '.join(p.doprint(v) for v in flat)}], _dt)",
                   f"    return _dt.type({p.doprint(u.env[typed.loss.sym][0][0])}), "
                   f"{{{', '.join(outs)}}}"]
