"""The fused path: the entrywise chains between a network kernel's GEMMs as single numba loops.

Where it sits: compile, beside :mod:`.numpy_printer` and :mod:`.emit`. The numpy kernel does its
entrywise work (a bias, an activation, its derivative, g ⊙ f′(a)) as separate numpy calls between
the GEMMs; at batch 1–32 of a 64-32-10 net those calls' fixed cost, not arithmetic, dominates.
Here each run of consecutive entrywise statements of the same typed program becomes one statement
whose right-hand side is a :class:`Fused` node; the kernel printer prints it as one call of a loop
function, whose source :class:`LoopPrinter` prints one entry at a time (every primitive by its
registered "python" code, the scalar interpretation; a helper that numba cannot compile as written
has its numba form in :data:`NUMBA_HELPERS`, a table of this interpretation's). GEMMs, reductions
(softmax, log-sum-exp, sums) and anything with the targets Y stay numpy's.

Chosen when numba is importable and ``SYMGRAD_FUSED`` is not ``0`` (the test suite sets it: see
tests/conftest.py); ``net.compile(fused=False)`` opts out, ``fused=True`` requires it. A loop numba cannot compile fails while compiling, naming the
primitives in it; under the default (``fused=None``) the kernel then falls back to numpy and its
``kernel.source`` says so (a documented, tested choice), under ``fused=True`` it raises.
"""
from __future__ import annotations

import math
import os

import numpy as np
import sympy as sp

from symgrad.core.matexpr import Elementwise, LogSumExp, Softmax, SumAll
from symgrad.core.primitives import HELPERS, RULES, MissingCodeError
from symgrad.compile.common import N, lambda_body, print_elementwise
from symgrad.compile.numpy_printer import KernelPrinter
from symgrad.compile.scalar import ScalarPrinter

_LOOPS: dict = {}  # generated loop source → its compiled numba function (numba compiles in s)


def available() -> bool:
    """Whether numba is importable."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def choose(fused) -> bool:
    """fused=None: the fused path when numba is importable and SYMGRAD_FUSED is not 0; True:
    required (an error without numba, whatever SYMGRAD_FUSED says); False: numpy only."""
    if fused is None:
        return os.environ.get("SYMGRAD_FUSED", "") != "0" and available()
    if fused is not True and fused is not False:
        raise ValueError(f"fused: expected True, False or None, got {fused!r}")
    if fused and not available():
        raise ValueError("fused=True: numba is not importable (pip install 'symgrad[fast]')")
    return fused


# numba's forms of the "python" helpers that numba cannot compile as written (they catch
# OverflowError, which numba's math never raises: its exp overflows to inf, as numpy's)
def _nb_exp(x):
    return math.exp(x)


def _nb_cosh(x):
    return math.cosh(x)


def _nb_sinh(x):
    return math.sinh(x)


NUMBA_HELPERS = {"_exp": _nb_exp, "_cosh": _nb_cosh, "_sinh": _nb_sinh}
_JITTED: dict = {}


def _helpers():
    """Every registered helper as a numba function (lazily compiled: only the used ones are)."""
    import numba
    for name, f in HELPERS.items():
        f = NUMBA_HELPERS.get(name, f)
        if callable(f) and _JITTED.get(name, (None,))[0] is not f:
            _JITTED[name] = (f, numba.njit(f))
    return {name: j for name, (_, j) in _JITTED.items()}


class Fused(sp.MatrixExpr):
    """Statements [(lhs, rhs)] of entrywise matrix expressions computed in one loop: args are a
    number (the group's index in the printer's table), the shape, and the arrays read."""

    prints_statement = True  # emit: the printer writes the whole statement (the loop's call)

    def __new__(cls, index, shape, *inputs):
        obj = sp.Basic.__new__(cls, sp.Integer(index), sp.Tuple(*shape), *inputs)
        return obj

    @property
    def shape(self):
        return tuple(self.args[1])

    @property
    def index(self):
        return int(self.args[0])


class LoopPrinter(ScalarPrinter):
    """One entry (i, j) of an entrywise matrix expression over batch values held transposed,
    (d, n) one example a column: a batch value as ``its_array[i, j]`` (or its scalar already
    computed in the loop), a bias broadcast 1·bᵀ as ``b[i]``; every primitive by its "python"
    code (PrimitivePrinting)."""

    def __init__(self, settings, entry):
        super().__init__({"order": "none", **settings})
        self.entry, self.env, self.lse = entry, {}, {}

    def _print_Symbol(self, e):
        return self.env[e] if e in self.env else ("n" if e == N else e.name)

    _print_Dummy = _print_Symbol

    def _print_MatrixSymbol(self, e):
        return self.entry[e]

    def _print_MatAdd(self, e):
        return "(" + " + ".join(self.paren(a) for a in e.args) + ")"

    def _print_HadamardProduct(self, e):
        return "(" + " * ".join(self.paren(a) for a in e.args) + ")"

    def _print_HadamardPower(self, e):
        return f"({self.paren(e.args[0])}**{self.paren(e.args[1])})"

    def _print_MatMul(self, e):
        z = _lse_row(e)
        if z is not None:  # (a loop over examples: this example's log-sum-exp)
            return self.lse[z]
        c, mats = e.as_coeff_matrices()
        if len(mats) == 2 and isinstance(mats[0], sp.OneMatrix):  # 1·bᵀ: b's entry i
            code = self.entry[mats[1].arg]
        else:
            code = self._print(mats[0])
        return code if c == 1 else f"({self.paren(c)}*{code})"

    def _print_Elementwise(self, e):
        return print_elementwise(self, e, self.paren)


def _bias(e):
    """b if e is 1·bᵀ (a bias row broadcast down the batch) with b a parameter column, else None."""
    if isinstance(e, sp.MatMul):
        c, mats = e.as_coeff_matrices()
        if c == 1 and len(mats) == 2 and isinstance(mats[0], sp.OneMatrix) \
                and isinstance(mats[1], sp.Transpose) and isinstance(mats[1].arg, sp.MatrixSymbol) \
                and mats[1].arg.shape[1] == 1:
            return mats[1].arg
    return None


def _lse_row(e):
    """z if e is logsumexp(z)·1ᵀ (each example's log-sum-exp broadcast along its row), else None."""
    if isinstance(e, sp.MatMul):
        c, mats = e.as_coeff_matrices()
        if c == 1 and len(mats) == 2 and isinstance(mats[1], sp.OneMatrix) \
                and isinstance(mats[0], LogSumExp) and mats[0].args[1] == 1 \
                and isinstance(mats[0].args[0], sp.MatrixSymbol) and mats[0].args[0].shape[0] == N:
            return mats[0].args[0]
    return None


def entrywise(e, shape, avoid, columns=False) -> bool:
    """Whether e (of ``shape``, (n, d)) is computed entry by entry from batch values of the same
    shape, bias rows and numbers: what one loop can do. ``columns``: in a loop over examples,
    where each example's log-sum-exp is a number too."""
    if e.shape != shape:
        return False
    if isinstance(e, sp.MatrixSymbol):
        return e not in avoid
    if _bias(e) is not None or columns and _lse_row(e) is not None:
        return True
    sub = lambda a: entrywise(a, shape, avoid, columns)  # noqa: E731
    if isinstance(e, sp.MatMul):
        c, mats = e.as_coeff_matrices()
        return len(mats) == 1 and not c.has(sp.MatrixSymbol) and sub(mats[0])
    if isinstance(e, (sp.MatAdd, sp.HadamardProduct)):
        return all(map(sub, e.args))
    if isinstance(e, sp.HadamardPower):
        return e.args[1].is_number and sub(e.args[0])
    if isinstance(e, Elementwise):
        reals, body = lambda_body(e.lam)
        return all(sub(a) for r, a in zip(reals, e.operands) if body.has(r))
    return False


def _summed(rhs):
    """(c, E) if rhs is c·Σ entries of E (a mean loss), else None."""
    c, m = 1, rhs
    if isinstance(rhs, sp.MatMul):
        c, mats = rhs.as_coeff_matrices()
        if len(mats) != 1 or c.has(sp.MatrixSymbol):
            return None
        m = mats[0]
    return (c, m.args[0]) if isinstance(m, SumAll) else None


def reduction(lhs, rhs, avoid) -> bool:
    """A per-example reduction one loop over examples does: a softmax of a batch value, or a
    number c·Σ entries of an entrywise value (each example's log-sum-exp a number there)."""
    if isinstance(rhs, Softmax):
        z = rhs.args[0]
        return rhs.args[1] == 1 and isinstance(z, sp.MatrixSymbol) and z.shape[0] == N
    got = _summed(rhs)
    return (got is not None and lhs.shape == (1, 1) and got[1].shape[0] == N
            and entrywise(got[1], got[1].shape, avoid, True))


def _product(e) -> bool:
    """A product of two or more matrices (a GEMM), none of them a ones vector."""
    if not isinstance(e, sp.MatMul):
        return False
    c, mats = e.as_coeff_matrices()
    return c == 1 and len(mats) >= 2 and not any(isinstance(m, sp.OneMatrix) for m in mats)


def split_products(stmts, avoid):
    """z = A B + rest (rest entrywise: a bias) as _gk = A B; z = _gk + rest, so the GEMM stays
    BLAS's and the rest joins the loop after it. Returns the statements and the new symbols."""
    out, made = [], set()
    for lhs, rhs in stmts:
        if isinstance(rhs, sp.MatAdd) and lhs.shape[0] == N:
            prods = [t for t in rhs.args if _product(t)]
            rest = [t for t in rhs.args if not _product(t)]
            if len(prods) == 1 and rest and all(entrywise(t, lhs.shape, avoid) for t in rest):
                g = sp.MatrixSymbol(f"_g{len(made)}", *lhs.shape)
                made.add(g)
                out += [(g, prods[0]), (lhs, sp.MatAdd(g, *rest))]
                continue
        out.append((lhs, rhs))
    return out, made


def group(stmts, avoid, keep, labels=()):
    """Runs of consecutive fusable statements as one statement each, (last lhs, Fused(k, …));
    returns the statements and the groups [(members, written, columns)]. A run with a reduction
    (softmax, a mean loss) is one loop over examples (``columns``), the targets Y read there;
    any other run, split where the batch shape changes, is one loop over entries (Y left to
    numpy). ``written``: the members read after the run or in ``keep`` (the kernel's outputs,
    the values whose Σ entry² is taken); the rest live in the loop only."""
    def fusable(lhs, rhs, cols):
        if not isinstance(lhs, sp.MatrixSymbol) or isinstance(rhs, sp.MatrixSymbol):
            return False
        if cols and reduction(lhs, rhs, ()):
            return True
        return lhs.shape[0] == N and entrywise(rhs, lhs.shape, () if cols else avoid, cols)
    runs, cur = [], []
    for i, (lhs, rhs) in enumerate(stmts):
        if fusable(lhs, rhs, True):
            cur.append(i)
            continue
        if cur:
            runs.append(cur)
        cur = []
    if cur:
        runs.append(cur)
    split = []  # (indices, columns)
    for run in runs:
        if any(reduction(*stmts[i], ()) for i in run):
            # a column loop from the first statement the reduction needs (an earlier bias add)
            split.append((run, True))
            continue
        sub = []
        for i in run:
            lhs, rhs = stmts[i]
            if not fusable(lhs, rhs, False) or sub and stmts[sub[-1]][0].shape != lhs.shape:
                if sub:
                    split.append((sub, False))
                sub = [i] if fusable(lhs, rhs, False) else []
            else:
                sub.append(i)
        if sub:
            split.append((sub, False))
    split = [(r, c) for r, c in split if c or _worth(stmts, r)]
    groups, out, at = [], [], {r[0]: (r, c) for r, c in split}
    skip = set()
    for i, (lhs, rhs) in enumerate(stmts):
        if i in skip:
            continue
        if i not in at:
            out.append((lhs, rhs))
            continue
        run, cols = at[i]
        members = [stmts[j] for j in run]
        skip.update(run)
        defined = {m for m, _ in members}
        later = set()
        for _, r in stmts[run[-1] + 1:]:
            later |= r.atoms(sp.MatrixSymbol)
        written = [m for m, _ in members if m in later or m in keep or m.shape == (1, 1)]
        if not written:
            written = [members[-1][0]]
        inputs = []
        for _, r in members:
            for a in sorted(r.atoms(sp.MatrixSymbol), key=lambda s: s.name):
                if a not in defined and a not in inputs:
                    inputs.append(a)
        groups.append((members, written, cols))
        out.append((members[-1][0], Fused(len(groups) - 1, members[-1][0].shape, *inputs)))
    return out, groups


def _worth(stmts, run) -> bool:
    """A run saves numpy calls unless it is one statement of one numpy call: a bias add alone,
    a plain product by a number."""
    if len(run) > 1:
        return True
    rhs = stmts[run[0]][1]
    ops = sum(1 for e in sp.preorder_traversal(rhs)
              if isinstance(e, (sp.MatAdd, sp.HadamardProduct, sp.HadamardPower, Elementwise)))
    return ops > 1 or any(isinstance(e, Elementwise) for e in sp.preorder_traversal(rhs))


def _entries(inputs, how):
    """Each input's entry (i, j) as loop code over its argument a<m>: a bias column b[i], a batch
    value held (d, n) at [i, j], an input X read as given, (n, d), at [j, i], integer labels y
    as the one-hot entry (y_j = i)."""
    args, entry = [f"a{m}" for m in range(len(inputs))], {}
    for a, s in zip(args, inputs):
        kind = how.get(s)
        entry[s] = (f"{a}[i]" if s.shape[0] != N else f"{a}[j, i]" if kind is True else
                    f"(1.0 if {a}[j] == i else 0.0)" if kind == "labels" else f"{a}[i, j]")
    return args, entry


def column_source(k, members, written, inputs, sums, settings, how):
    """The source of loop function ``_fz<k>``, one pass per example j (a column of the held
    arrays): each member in turn over that example's entries i; a softmax shifted by the
    example's maximum (logits of ±1000 stay finite), its log-sum-exp kept for the loss; a mean
    loss c·Σ E accumulated. Every batch member is stored (a later member reads it back); the
    ``written`` ones and each Σ entry² of ``sums`` are returned."""
    args, entry = _entries(inputs, how)
    p = LoopPrinter(settings, entry)
    first = next(m for m, s in enumerate(inputs) if s.shape[0] == N and how.get(s) != "labels")
    n = (f"a{first}.shape[0]" if how.get(inputs[first]) is True else f"a{first}.shape[1]")
    lines = [f"def _fz{k}({', '.join(args)}):", f"    n = {n}"]
    arrays, scalars, body, ret = {}, {}, [], {}
    for t, (lhs, rhs) in enumerate(members):
        if lhs.shape[0] == N:
            arrays[lhs] = f"o{t}"
            lines.append(f"    o{t} = np.empty(({lhs.shape[1]}, n), a{first}.dtype)")
    qs = [m for m, _ in members if m in sums]
    lines += [f"    q_{m.name} = 0.0" for m in qs]
    for t, (lhs, rhs) in enumerate(members):
        if isinstance(rhs, Softmax) or _lse_needed(rhs, p):
            z = rhs.args[0] if isinstance(rhs, Softmax) else None
            for zz in ([z] if z is not None else _lse_needed(rhs, p)):
                if zz in p.lse:
                    continue
                ze = entry[zz]
                kz, tag = zz.shape[1], f"_{len(p.lse)}"
                p.lse[zz] = f"lse{tag}"
                out = arrays[lhs] if z is not None and zz == z else None
                body += [f"m{tag} = -math.inf", f"for i in range({kz}):",
                         f"    m{tag} = max(m{tag}, {ze})",
                         f"s{tag} = 0.0", f"for i in range({kz}):",
                         f"    e = math.exp({ze} - m{tag})"]
                body += [f"    {out}[i, j] = e"] if out else []
                body += [f"    s{tag} += e", f"lse{tag} = math.log(s{tag}) + m{tag}"]
            if z is not None:
                o, tag = arrays[lhs], p.lse[z][3:]
                body += [f"for i in range({z.shape[1]}):", f"    {o}[i, j] /= s{tag}"]
                entry[lhs] = f"{o}[i, j]"
                continue
        got = _summed(rhs)
        if got is not None:  # c·Σ E: accumulated over every example
            c, E = got
            scalars[lhs] = (f"r{t}", c)
            lines.append(f"    r{t} = 0.0")
            body += [f"for i in range({E.shape[1]}):", f"    r{t} += {p.doprint(E)}"]
            continue
        o = arrays[lhs]
        body += [f"for i in range({lhs.shape[1]}):", f"    t = {p.doprint(rhs)}",
                 f"    {o}[i, j] = t"]
        if lhs in sums:
            body.append(f"    q_{lhs.name} += t * t")
        entry[lhs] = f"{o}[i, j]"
    lines.append("    for j in range(n):")
    lines += ["        " + b for b in body]
    for m in written:
        ret[m] = arrays[m] if m in arrays else (
            f"{scalars[m][0]}" if scalars[m][1] == 1 else f"{p.paren(scalars[m][1])}*{scalars[m][0]}")
    rets = [ret[m] for m in written] + [f"q_{m.name}" for m in qs]
    lines.append(f"    return {', '.join(rets)}{',' if len(rets) == 1 else ''}")
    return "\n".join(lines) + "\n", qs


def _lse_needed(rhs, p):
    """The z's whose log-sum-exp rows rhs reads and the loop has not reduced yet."""
    got = [x.args[0] for x in sp.preorder_traversal(rhs) if isinstance(x, LogSumExp)]
    return [z for z in dict.fromkeys(got) if z not in p.lse]


def loop_source(k, members, written, inputs, sums, settings, batch_inputs):
    """The source of loop function ``_fz<k>`` over the arrays ``inputs``: each member's entry
    computed once into a local, the ``written`` ones stored, Σ entry² of those in ``sums``.
    ``batch_inputs``: {input: True if its array is held transposed of the kernel's layout (an
    input X read as X, (n, d), indexed [j, i])}."""
    args, entry = _entries(inputs, batch_inputs)
    p = LoopPrinter(settings, entry)
    first = next(m for m, s in enumerate(inputs) if s.shape[0] == N)
    kdim = members[0][0].shape[1]
    dims = (f"    n = a{first}.shape[0]" if batch_inputs.get(inputs[first])
            else f"    n = a{first}.shape[1]")
    outs = {m: f"o{t}" for t, m in enumerate(written)}
    body, lines = [], [f"def _fz{k}({', '.join(args)}):", dims]
    lines += [f"    {o} = np.empty(({kdim}, n), a{first}.dtype)" for o in outs.values()]
    qs = [m for m, _ in members if m in sums]
    lines += [f"    q_{m.name} = 0.0" for m in qs]
    for t, (lhs, rhs) in enumerate(members):
        code = p.doprint(rhs)
        loc = f"t{t}"
        body.append(f"{loc} = {code}")
        entry[lhs] = loc
        if lhs in outs:
            body.append(f"{outs[lhs]}[i, j] = {loc}")
        if lhs in sums:
            body.append(f"q_{lhs.name} += {loc} * {loc}")
    lines += [f"    for i in range({kdim}):", "        for j in range(n):"]
    lines += ["            " + b for b in body]
    rets = [outs[m] for m in written] + [f"q_{m.name}" for m in qs]
    lines.append(f"    return {', '.join(rets)}{',' if len(rets) == 1 else ''}")
    return "\n".join(lines) + "\n", qs


def compile_loop(src, name, members, ndims, kinds=None):
    """The numba function of ``src``, compiled now for float64 and float32 arrays of any layout
    (``ndims``: each argument's), made once per source. A loop numba cannot compile raises a
    one-line MissingCodeError naming the primitives in it."""
    if src in _LOOPS:
        return _LOOPS[src]
    import numba
    ns = {"np": np, "math": math, **_helpers()}
    exec(compile(src, f"<symgrad fused {name}>", "exec"), ns)
    sigs = []
    kinds = kinds or [None] * len(ndims)
    for t in (numba.float64, numba.float32):
        sigs.append(tuple(numba.types.Array(numba.intp if k == "labels" else t, d, "A")
                          for d, k in zip(ndims, kinds)))
    try:
        fn = numba.njit(sigs, cache=False)(ns[name])
    except Exception as err:  # numba's TypingError and kin: many lines; one says what
        prims = sorted({RULES[type(x)].name for _, r in members for x in sp.preorder_traversal(r)
                        if isinstance(x, Elementwise) for y in [lambda_body(x.lam)[1]]
                        for x in sp.preorder_traversal(y) if type(x) in RULES})
        what = ", ".join(map(repr, prims)) or "an entrywise expression"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MissingCodeError(f"compile: the fused (numba) path cannot compile the loop for "
                               f"{what}: {first}") from None
    _LOOPS[src] = fn
    return fn


class FusedKernelPrinter(KernelPrinter):
    """The numpy kernel printer, printing a :class:`Fused` statement as one call of its loop
    (made and compiled here, once per source), whose results the statement names."""

    def __init__(self, settings=None, names=None, groups=(), sums=(), loops=None):
        super().__init__(settings, names)
        self.groups, self.sums_wanted, self.loops = groups, set(sums), loops

    def _print_Fused(self, e):
        members, written, cols = self.groups[e.index]
        inputs = list(e.args[2:])
        codes, how = [], {}
        for s in inputs:
            if s == self.labels:  # integer labels, (n,): as intp, the loop's one signature
                codes.append("(Y if Y.dtype is _INTP else Y.astype(_INTP))")
                how[s] = "labels"
                continue
            code = self._print(s)
            if s.shape[0] == N and code.endswith(".T") and code[:-2].isidentifier():
                code, how[s] = code[:-2], True  # an input X: read as it is, (n, d), at [j, i]
            codes.append(code)
        name = f"_fz{e.index}" + ("l" if self.labels is not None and self.labels in inputs else "")
        make = column_source if cols else loop_source
        src, qs = make(e.index, members, written, inputs, self.sums_wanted,
                       {"relu_grad_at_zero": self._settings["relu_grad_at_zero"]}, how)
        src = src.replace(f"def _fz{e.index}(", f"def {name}(")
        ndims = [2 if s.shape[0] == N and how.get(s) != "labels" else 1 for s in inputs]
        kinds = ["labels" if how.get(s) == "labels" else None for s in inputs]
        self.loops[name] = (src, compile_loop(src, name, members, ndims, kinds))
        outs = [m.name for m in written] + [f"q_{m.name}" for m in qs]
        for m in qs:
            self.sumsq[m.name] = f"q_{m.name}"
        self.pre.append(f"{', '.join(outs)}{',' if len(outs) == 1 else ''} = "
                        f"{name}({', '.join(codes)})")
        # a loss accumulated in float64: given back in the kernel's dtype, as numpy's
        self.pre += [f"{m.name} = dt.type({m.name})" for m in written if m.shape == (1, 1)]
        return ""
