"""The symbols a handout writes for a network's values: by role and block, from the op registry.

Where it sits: graph (read by the handouts through symgrad.printing.names). A node whose name a
builder chose (``Graph.generated``: s7, xhat2, ln10, the graph's node count in it) is written by its
op's registered :class:`~symgrad.graph.ops.Symbol` instead, numbered by its place among the nodes
of the same letter: the attention scores s⁽¹⁾, s⁽²⁾ of two heads, the residual sums r⁽¹⁾, r⁽²⁾, the
layer norms x̂⁽¹⁾, x̃⁽¹⁾ with γ⁽¹⁾, β⁽¹⁾ by block. A letter is numbered when the graph has several
of it, or always for the notes' layers (z⁽¹⁾, h⁽¹⁾); a dense node read where an op names its
operand (scores' query and key, attend's value) is written by that letter, its parameters with it
below (W_q⁽¹⁾). A name the user chose is never replaced. Nothing here reads or builds text from a
name: the letters come from the registrations (code). :func:`symbols_of` is the table every printer
reads (handouts, and ``derive``'s text and LaTeX through a derivation's ``meta["symbols"]``), so a
value is written alike wherever it is printed.
"""

from __future__ import annotations

import re

from symgrad.graph.ops import OPS


def symbol_table(net) -> dict:
    """{node or parameter name: (letter TeX, subscript TeX, number or None)} for the values whose
    names were generated; a value missing from it is written by its name. Every node counts in
    the numbering, a user's named ones too (mlp's h1 and yhat keep z⁽ᵏ⁾ and W⁽ᵏ⁾ in step)."""
    gen = getattr(net, "generated", set())
    letter, sub, rule = {}, {}, {}
    for n in net.nodes.values():
        op = OPS.get(n.op)
        if n.op == "input" or op is None or op.symbol is None:
            continue
        letter[n.name], sub[n.name], rule[n.name] = op.symbol.letter, "", op.symbol
    for n in net.nodes.values():  # the operands an op names: q, k and v of attention
        op = OPS.get(n.op)
        for i, role in zip(n.inputs, op.symbol.operands if op and op.symbol else ()):
            if role and i in letter and net.nodes[i].op == "dense":
                letter[i], sub[i] = role, role
    count, number, seen = {}, {}, {}
    for L in letter.values():
        count[L] = count.get(L, 0) + 1
    for name, L in letter.items():  # (nodes in the order they were added)
        node, r = net.nodes[name], rule[name]
        src = node.inputs[0] if node.inputs else None
        if not (r.numbered or count[L] > 1):
            number[name] = None
        elif r.follows and number.get(src) is not None and not sub.get(src):
            number[name] = number[src]  # h⁽ᵏ⁾ = f(z⁽ᵏ⁾)
        else:
            seen[L] = seen.get(L, 0) + 1
            number[name] = seen[L]
    table = {name: (L, "", number[name]) for name, L in letter.items() if name in gen}
    for name, L in letter.items():
        for p, pl in zip(net.nodes[name].params, rule[name].params):
            if p in gen and p not in table:  # a shared parameter: as its first layer writes it
                table[p] = (pl, sub[name], number[name])
    return table


def output_heads(net) -> list[dict]:
    """A network with several outputs (a multi-task net's heads): for each output in order,
    {role: name} of the layer that computes it: its "weight" and "bias" and its "pre"-activation
    (the dense node an activation reads; none where the output is the dense node itself). Only
    generated names: one the user chose is never replaced. [] for a network of one output."""
    outs = list(getattr(net, "outputs", ()))
    if len(outs) < 2:
        return []
    gen = getattr(net, "generated", set())
    heads = []
    for o in outs:
        node = net.nodes[o]
        dense = node if node.op == "dense" else net.nodes.get(node.inputs[0]) \
            if node.inputs else None
        head = {}
        if dense is not None and dense.op == "dense":
            head = dict(zip(("weight", "bias"), dense.params))
            if dense.name != o:
                head["pre"] = dense.name
        heads.append({role: n for role, n in head.items() if n in gen})
    return heads


def batch_name(name: str) -> str:
    """The batch matrix of a node (z1 → Z1, yhat → Yhat): the backward pass's and handouts' name."""
    return "Yhat" if name == "yhat" else name[0].upper() + name[1:]


def _capital(letter: str) -> str:
    """A registered letter's capital, for the batch matrix of a node (z → Z, x̂ → X̂); the
    letters are code (ops' registrations), never a user's text."""
    m = re.fullmatch(r"(\\[a-z]+)\{([a-z])\}", letter)
    return "%s{%s}" % (m.group(1), m.group(2).upper()) if m else \
        letter.upper() if re.fullmatch(r"[a-z]", letter) else letter


def symbols_of(net) -> tuple[dict, tuple]:
    """(table, names): :func:`symbol_table` with the batch program's names by role too (the
    handout's S18 is 𝐑⁽¹⁾ as s18 is 𝐫⁽¹⁾, dW11 is d𝐖⁽²⁾), and every name a printer may meet
    beside them (a printer keeps a value's name where its symbol would print as another's does,
    symgrad.printing.names.with_symbols). An empty table for a net with no generated name."""
    def build():
        table = symbol_table(net)
        taken = set(table.values())
        for name, (letter, sub, k) in list(table.items()):
            batch = (_capital(letter), sub, k) if name in net.nodes else \
                (r"\mathrm{d}" + letter if letter.startswith("\\") else "d" + letter, sub, k)
            if batch not in taken:  # (the batch of e would be E, the embedding's table: a name)
                table.setdefault(batch_name(name) if name in net.nodes else "d" + name, batch)
        names = (*net.nodes, *net.shapes, "y", *(net.target_of(o).name for o in net.outputs),
                 *(batch_name(n) for n in net.nodes), *("d" + p for p in net.shapes))
        return table, names
    return net.cached(symbols_of, build)


def says_itself(name: str, entry: tuple) -> bool:
    """Whether a generated name already reads as its symbol: mlp's W1 is W⁽¹⁾ and z1 is z⁽¹⁾
    (written W₁, z₁ in text as ever), yhat is ŷ; attention's s18 is r⁽¹⁾ and xhat10 x̂⁽²⁾, which
    the name does not say."""
    letter, sub, k = entry
    m = re.fullmatch(r"\\([a-z]+)\{([A-Za-z])\}", letter)  # \hat{y}: the name yhat
    spelled = m.group(2) + m.group(1) if m else letter
    return not sub and re.fullmatch(r"[A-Za-z]+", spelled) is not None and \
        name == spelled + (str(k) if k else "")


def renames(net) -> bool:
    """Whether the printers must write some value of ``net`` by its role (symbols_of): a name
    was generated that does not say its symbol. mlp's nets say theirs (W1, z1, yhat), so their
    derivations print as they always have."""
    table, _ = symbols_of(net)
    return any(not says_itself(n, e) for n, e in table.items())


def heads_of(net) -> list[dict]:
    """:func:`output_heads` with each head's batch pre-activation (Z3 of z3) under "batch pre":
    what a notation that names heads (ESL's β⁽ᵏ⁾) reads, for handouts and ``derive`` alike."""
    return [{**h, **({"batch pre": batch_name(h["pre"])} if "pre" in h else {})}
            for h in output_heads(net)]


__all__ = ["symbol_table", "output_heads", "heads_of", "symbols_of", "batch_name", "says_itself", "renames"]
