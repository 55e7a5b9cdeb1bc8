"""The emitter: a batch program [(lhs, rhs)] as Python statements, shared subexpressions once.

Where it sits: compile, after the derived batch program and beside :mod:`.numpy_printer` (which
prints each right-hand side); :mod:`.kernel` wraps the statements into a function. Temporaries that
are dead after a statement are updated in place (``+=``, ``*=``), products go to BLAS through ``@``.
"""
from __future__ import annotations

import functools

import sympy as sp

from symgrad.core.matexpr import Elementwise, Softmax
from symgrad.compile.common import N, IDENT, NUMBER, batch_rows, broadcasts


def _nodes(e):
    yield e
    if isinstance(e, sp.MatrixExpr) and not isinstance(e, sp.MatrixSymbol):
        for a in (e.operands if isinstance(e, Elementwise) else e.args):
            yield from _nodes(a)


@functools.lru_cache(maxsize=8192)
def _symbols(e) -> frozenset:
    """The MatrixSymbols e reads. Memoized: emit, _fuse_products and _fold_scale each read every
    statement's, and a kernel's forward function reads the same statements again (SymPy's atoms
    walks the whole tree: 9 walks of each right-hand side were 20% of a 64-layer net's compile)."""
    return frozenset(e.atoms(sp.MatrixSymbol))


def _worth(e):
    return (isinstance(e, sp.MatrixExpr) and not isinstance(e, (sp.MatrixSymbol, sp.OneMatrix))
            and not (isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol))
            and not broadcasts(e))


def cse(stmts):
    """Hoist every matrix subexpression used twice into a temporary ``_c<k>`` defined once, just
    before its first use (e.g. ŷ − y, shared by the mse loss and its gradient)."""
    stmts, k = list(stmts), 0
    while True:
        counts = {}
        for _, rhs in stmts:
            for e in _nodes(rhs):
                if _worth(e):
                    counts[e] = counts.get(e, 0) + 1
        reps = [e for e, c in counts.items() if c > 1]
        if not reps:
            return stmts
        e = max(reps, key=lambda x: sum(1 for _ in _nodes(x)))
        sym, k = sp.MatrixSymbol(f"_c{k}", *e.shape), k + 1
        first = next(i for i, (_, r) in enumerate(stmts) if any(x == e for x in _nodes(r)))
        stmts = [(lhs, rhs.xreplace({e: sym})) for lhs, rhs in stmts]
        stmts.insert(first, (sym, e))


def emit(stmts, printer, owned, outputs=(), sums_of_squares=()):
    """Python statements for ``stmts`` [(lhs, rhs)]. A symbol in ``owned`` that is dead after a
    statement (its whole alias group) may be updated in place to make that statement's value.
    ``sums_of_squares``: values whose Σ entry² is taken as ``q_<name>`` right after their own
    statement, before anything may update them in place (the kernel's after-the-fact nan/inf
    check; a softmax of such a value reuses it for its range test)."""
    stmts, fused = _fuse_products(stmts, owned)  # (first: it inserts statements)
    owned = set(owned) | fused
    last, alias, lines, foreign = {}, {}, [], set()
    for i, (_, rhs) in enumerate(stmts):
        for s in _symbols(rhs):
            last[s] = i

    def group(s):  # s's alias group (the name test first: SymPy's == on every entry was slow)
        root = alias.get(s, s)
        return [t for t, r in alias.items() if r.name == root.name and r == root] + [root]

    def consumable(s, i, rhs, shape):
        if not isinstance(s, sp.MatrixSymbol) or s not in owned or s in foreign or s.shape != shape:
            return False
        members = set(group(s))
        uses = sum(1 for x in _nodes(rhs) if x in members)
        return uses == 1 and all(last.get(t, -1) <= i for t in members)

    def fresh(t, shape):
        if t.shape != shape or broadcasts(t) or isinstance(t, (sp.MatrixSymbol, sp.Transpose)):
            return False
        code = printer._print(t)
        return not (IDENT.match(code) or NUMBER.match(code))

    stmts, scale = _fold_scale(stmts)
    printer.buffered = ({s for s in owned if s.shape[0] == N} - set(outputs)
                        - getattr(printer, "unbuffered", set()))
    for i, (lhs, rhs) in enumerate(stmts):
        L, shape = lhs.name, lhs.shape
        printer.pre = []
        body = []
        if getattr(rhs, "prints_statement", False):  # a fused loop: its call names its results
            printer._print(rhs)
        elif isinstance(rhs, Softmax) and rhs.args[1] == 1:
            z = rhs.args[0]
            printer.softmax_rows(z, L, inplace=consumable(z, i, rhs, shape),
                                 buffered=lhs in printer.buffered)
            body = [f"{L} *= {printer._paren(scale[lhs])}/s_{L}" if lhs in scale
                    else f"{L} /= s_{L}"]
        elif isinstance(rhs, sp.MatrixSymbol):
            alias[lhs] = alias.get(rhs, rhs)
            body = [f"{L} = {rhs.name}.copy()" if lhs in outputs else f"{L} = {rhs.name}"]
        elif isinstance(rhs, sp.MatrixSlice):  # a view of its parent: updating it in place
            code = printer.into(lhs, rhs)      # would change the parent (a concat's gradient)
            parent = rhs.parent
            if isinstance(parent, sp.MatrixSymbol) and parent in owned and parent not in foreign:
                alias[lhs] = alias.get(parent, parent)
            else:
                foreign.add(lhs)
            body = [f"{L} = {code}.copy()" if lhs in outputs else f"{L} = {code}"]
        elif isinstance(rhs, (sp.MatAdd, sp.HadamardProduct, sp.MatMul)):
            body = _update(printer, lhs, rhs, i, consumable, fresh, alias)
        if not body and not getattr(rhs, "prints_statement", False):
            code = printer.into(lhs, rhs)
            body = [f"{L} = {code}"]
            if IDENT.match(code):  # the value of another array (an identity activation)
                same = next((t for t in owned if t.name == code), None)
                if same is not None:
                    alias[lhs] = alias.get(same, same)
                else:  # an input's or a parameter's: never to be updated in place
                    foreign.add(lhs)
        lines += printer.pre + body
        if lhs in sums_of_squares and L not in printer.sumsq:
            printer.sumsq[L] = f"q_{L}"
            lines.append(f"q_{L} = _sumsq({L})")
    return lines


def _fuse_products(stmts, owned):
    """Products of one batch value with several weight matrices as one GEMM each (the q, k, v
    projections of every attention head read the same h: 12 products of 32 rows at 4 heads, one
    of 384, as torch's packed in_proj). With W = [W_1; W_2; …] stacked by rows:

    - forward, z_i = h W_iᵀ (+ b_i) for one h: F = h Wᵀ once, z_i = F[:, rows of W_i] (+ b_i);
    - backward, a sum Σ_i G_i W_i (the g reaching h): [G_1 … G_k] W, the G's stacked side by side;
    - the weights' gradients G_iᵀ h for one h: [G_1 … G_k]ᵀ h once, each gradient its rows.

    Returns the statements (new temporaries before their first use) and the new symbols."""
    batch = lambda e: isinstance(e, sp.MatrixSymbol) and e.shape[0] == N  # noqa: E731
    defined = {lhs: i for i, (lhs, _) in enumerate(stmts)}
    param = lambda e: (isinstance(e, sp.MatrixSymbol) and not batch_rows(e.shape[0])  # noqa: E731
                       and e not in defined and e not in owned)
    first = {}  # where each symbol is first read: the order of the stacks
    for i, (_, rhs) in enumerate(stmts):
        for a in _symbols(rhs):
            first.setdefault(a, i)
    stmts, before, made, k = list(stmts), {}, set(), iter(range(1 << 30))

    def new(prefix, rows, cols, rhs, at):
        sym = sp.MatrixSymbol(f"_{prefix}{next(k)}", rows, cols)
        before.setdefault(at, []).append((sym, rhs))
        made.add(sym)
        return sym

    def rows_of(mats, axis):  # (start, stop) of each block along its stacked axis
        out, r = [], 0
        for m in mats:
            out.append((r, r + m.shape[axis]))
            r += m.shape[axis]
        return out, r

    # forward: z_i = h W_iᵀ (+ rest) for one h
    groups = {}
    for i, (lhs, rhs) in enumerate(stmts):
        terms = list(rhs.args) if isinstance(rhs, sp.MatAdd) else [rhs]
        t = next((t for t in terms if isinstance(t, sp.MatMul) and len(t.args) == 2
                  and batch(t.args[0]) and isinstance(t.args[1], sp.Transpose)
                  and param(t.args[1].arg)), None)
        if t is not None:
            groups.setdefault(t.args[0], []).append((i, t.args[1].arg, t, terms))
    stacked_w = {}  # (W_1, W_2, …) → its stack's symbol and where it is defined
    for h, members in groups.items():
        if len(members) < 2 or len({W for _, W, _, _ in members}) < len(members):
            continue
        Ws = tuple(W for _, W, _, _ in members)
        spans, total = rows_of(Ws, 0)
        at = members[0][0]
        w = new("w", total, Ws[0].shape[1], sp.BlockMatrix([[W] for W in Ws]), at)
        stacked_w[Ws] = (w, at)
        f = new("f", N, total, sp.MatMul(h, sp.Transpose(w)), at)
        for (i, _, t, terms), (r0, r1) in zip(members, spans):
            part = f[:, r0:r1]
            rest = [x for x in terms if x is not t]
            stmts[i] = (stmts[i][0], sp.MatAdd(part, *rest) if rest else part)

    # backward: Σ_i G_i W_i, and the gradients G_iᵀ h
    stacks = {}  # frozenset of G's → (the stack's symbol, its G's in order, where defined)
    for i, (lhs, rhs) in enumerate(stmts):
        if not isinstance(rhs, sp.MatAdd) or len(rhs.args) < 2:
            continue
        pairs = [t.args for t in rhs.args if isinstance(t, sp.MatMul) and len(t.args) == 2
                 and batch(t.args[0]) and param(t.args[1])]
        if len(pairs) != len(rhs.args) or len({W for _, W in pairs}) < len(pairs) \
                or len({G for G, _ in pairs}) < len(pairs):
            continue
        pairs.sort(key=lambda gw: first.get(gw[1], 0))
        Gs, Ws = tuple(G for G, _ in pairs), tuple(W for _, W in pairs)
        if Ws in stacked_w and stacked_w[Ws][1] <= i:
            w = stacked_w[Ws][0]
        else:
            w = new("w", rows_of(Ws, 0)[1], Ws[0].shape[1], sp.BlockMatrix([[W] for W in Ws]), i)
        g = new("s", N, rows_of(Gs, 1)[1], sp.BlockMatrix([list(Gs)]), i)
        stacks[frozenset(Gs)] = (g, Gs, i)
        stmts[i] = (lhs, sp.MatMul(g, w))
    grads = {}
    for i, (lhs, rhs) in enumerate(stmts):
        if isinstance(rhs, sp.MatMul) and len(rhs.args) == 2 and isinstance(rhs.args[0], sp.Transpose) \
                and batch(rhs.args[0].arg) and batch(rhs.args[1]):
            grads.setdefault(rhs.args[1], []).append((i, rhs.args[0].arg))
    for h, members in grads.items():
        Gset = frozenset(G for _, G in members)
        if len(members) < 2 or len(Gset) < len(members):
            continue
        at = members[0][0]
        if Gset in stacks and stacks[Gset][2] <= at:
            g, Gs, _ = stacks[Gset]
        else:
            Gs = tuple(G for _, G in members)
            g = new("s", N, rows_of(Gs, 1)[1], sp.BlockMatrix([list(Gs)]), at)
        spans, total = rows_of(Gs, 1)
        d = new("d", total, h.shape[1], sp.MatMul(sp.Transpose(g), h), at)
        where = dict(zip(Gs, spans))
        for i, G in members:
            r0, r1 = where[G]
            stmts[i] = (stmts[i][0], d[r0:r1, :])
    out = []
    for i, st in enumerate(stmts):
        out += before.get(i, []) + [st]
    return out, made


def _fold_scale(stmts):
    """ŷ = softmax(z) whose one use is g = c·(ŷ + r) (the cross-entropy gradient, c = 1/n): scale
    ŷ by c while normalizing it, and g = ŷ + c·r, one pass over g fewer. Returns the statements
    and {ŷ: c}."""
    stmts, scale = list(stmts), {}
    reads = None  # symbol → the statements reading it (a rewrite below reads the same symbols)
    for i, (lhs, rhs) in enumerate(stmts):
        if not isinstance(rhs, Softmax):
            continue
        if reads is None:
            reads = {}
            for j, (_, r) in enumerate(stmts):
                for a in _symbols(r):
                    reads.setdefault(a, []).append(j)
        users = reads.get(lhs, [])
        if len(users) != 1:
            continue
        j = users[0]
        target, r = stmts[j]
        if isinstance(r, sp.MatMul):
            c, mats = r.as_coeff_matrices()
            if len(mats) == 1 and isinstance(mats[0], sp.MatAdd) and lhs in mats[0].args \
                    and c != 1 and not c.has(sp.MatrixSymbol):
                rest = [sp.MatMul(c, t).doit() for t in mats[0].args if t != lhs]
                stmts[j] = (target, sp.MatAdd(lhs, *rest))
                scale[lhs] = c
    return stmts, scale


def _update(printer, lhs, rhs, i, consumable, fresh, alias):
    """lhs = a ∘ b ∘ … as ``lhs = a; lhs ∘= b …`` when a is a dead temporary or a fresh array."""
    L, shape = lhs.name, lhs.shape
    if isinstance(rhs, sp.MatMul):
        c, mats = rhs.as_coeff_matrices()
        if c == 1 or len(mats) != 1:
            return None
        inner = mats[0]
        if isinstance(inner, (sp.MatAdd, sp.HadamardProduct)) and not consumable(inner, i, rhs, shape):
            head = _update(printer, lhs, inner, i, consumable, fresh, alias)
            if head:
                return head + ([f"np.negative({L}, out={L})"] if c == -1
                               else [f"{L} *= {printer._print(c)}"])
        terms, op = [inner], None
    else:
        terms, op = list(rhs.args), ("+=" if isinstance(rhs, sp.MatAdd) else "*=")
    pick = next((t for t in terms if consumable(t, i, rhs, shape)), None)
    if pick is not None:
        alias[lhs] = alias.get(pick, pick)
        head = [f"{L} = {pick.name}"]
    else:
        pick = next((t for t in terms if fresh(t, shape)), None)
        if pick is None:
            return None
        head = [f"{L} = {printer.into(lhs, pick)}"]
    rest = [t for t in terms if t is not pick]
    Y = printer.labels
    if op == "+=" and Y is not None and pick != Y:  # c·Y added at each row's label: one entry a row
        for t in [t for t in rest if t == Y or isinstance(t, sp.MatMul)
                  and t.as_coeff_matrices()[1] == [Y]]:
            rest.remove(t)
            c_ = 1 if t == Y else t.as_coeff_matrices()[0]
            head.append(f"_add_at({L}, flat, Y, {printer._print(c_)})")
    if op is None:
        return head + ([f"np.negative({L}, out={L})"] if c == -1 else [f"{L} *= {printer._print(c)}"])
    for t in rest:
        c_, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
        if op == "+=" and c_ != 1 and c_.is_number and c_ < 0:
            head.append(f"{L} -= {printer._product(-c_, mats)}")
        else:
            head.append(f"{L} {op} {printer._print(t)}")
    return head
