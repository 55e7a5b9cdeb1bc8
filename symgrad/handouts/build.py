"""Handouts: a whole document a student can learn backprop from, derived for one network.

Where it sits: derive → print → **handout**. :func:`handout` asks the engines for every derivation
(``net.derive(p)`` at the matrix level, ``net.derive(w, level="element")`` unit by unit,
``net.backprop()`` for Algorithm 6.4), prints them with ``symgrad.latex`` and lays them out as a
document model: the network and its forward propagation, the loss, one section per parameter, the
shared backward pass, the final algorithm, and exercises with solutions on a separate page.
``symgrad.handout_render`` turns the model into an article, beamer slides or Markdown, and a PDF.
"""
from __future__ import annotations


import sympy as sp

from symgrad.core.derivation import Derivation, Grad, Partial, StepKind
from symgrad.printing.latex import latex, names_in
from symgrad.printing.names import notation as _notation
from symgrad.handouts.assembled import assembled_section, fits
from symgrad.handouts.backward import algorithm_section, backward_section, gradient_summary
from symgrad.handouts.model import (Doc, Section, batch_tex, cost_name, cost_sums, cost_tex,
                                    cost_word, g_name, loss_names, term_names, value_space)
from symgrad.derive import backprop, element, matrix
from symgrad.derive.cost import with_cost
from symgrad.derive.matrix import derive_parameter
from symgrad.graph.files import load_network, parse_spec
from symgrad.graph.activations import ACTIVATIONS
from symgrad.graph.network import Graph, mlp
from symgrad.graph.ops import OPS
from symgrad.graph.embedding import vocabulary
from symgrad.handouts.render import render
from symgrad.printing.words import words
from symgrad.printing.names import TeXName, text_escape, with_symbols
from symgrad.graph.symbols import heads_of, symbols_of
from symgrad.printing.latex import tex_width
from symgrad.handouts.pdf import compile_pdf
from symgrad.graph.files import run_network_file
from symgrad.handouts.worksheet import read_problems
from symgrad.handouts import diagram, glossary

LEVELS = ("matrix", "element", "both")
VERBOSITY = ("brief", "normal", "full")
ELEMENT_LIMIT = 40  # scalar parameters: beyond this the unit-by-unit view is left out
# Layers with parameters: a handout grows linearly with them (~12 KB of LaTeX and ~25 ms each),
# 64 layers are 790 KB and ~2 s, hundreds of pages no one hands out; past it, refused at once.
LAYER_LIMIT = 64
# Past this many layers with parameters a handout is "brief" unless asked otherwise: "normal"
# writes each g's backward step in the deepest parameter's section as well as in the shared
# backward pass (an 8-layer net: 19 pages of article at "normal").
BRIEF_PAST = 4
# Slides are "brief" past one such layer: at "normal" the XOR slides (2 layers) were 93 pages
# (with the clicks), MNIST's (3) 84, where the lecture notes give MNIST two slides; "brief"
# makes them 20 and 31, and the article keeps every step.
BEAMER_BRIEF_PAST = 1


def handout(net_or_spec, level: str = "matrix", verbosity: str | None = None, fmt: str = "article",
            exercises: bool = True, notation: str = "slides", title: str | None = None,
            hidden: str = "relu", output: str = "identity", loss: str = "mse",
            history=None, reveal: bool = True) -> str:
    """A complete handout for a network (or a spec like "2-2-1", built with ``mlp(sizes, hidden,
    output, loss)``) as LaTeX (``fmt`` "article" or "beamer") or Markdown ("markdown").
    ``reveal``: slides uncover a derivation in a few clicks (False: none, one page per frame,
    to print); an article or Markdown has none either way."""
    check_options({"reveal": reveal})
    if isinstance(net_or_spec, Derivation) or (isinstance(net_or_spec, (list, tuple)) and
                                               net_or_spec and all(isinstance(d, Derivation)
                                                                   for d in net_or_spec)):
        return render(derivations_doc(net_or_spec, notation, title), fmt, reveal)
    net = as_network(net_or_spec, hidden, output, loss)
    return render(build(net, level, verbosity, exercises, notation, title, history,
                        brief_past=BEAMER_BRIEF_PAST if fmt == "beamer" else BRIEF_PAST), fmt,
                  reveal)


def derivations_doc(ds, notation="slides", title=None) -> Doc:
    matrix = ds and all("problem" in getattr(d, "meta", {}) for d in
                        ([ds] if isinstance(ds, Derivation) else ds))
    doc = _derivations_doc(ds, notation, title or ("Matrix calculus, step by step" if matrix
                                                   else None))
    if matrix:
        doc.subtitle = "Functions of vectors and matrices, one section each"
    return doc


def _derivations_doc(ds, notation="slides", title=None) -> Doc:
    """A document of plain-function derivations (a Jacobian, f∘g both ways, vec): one section
    each, titled by the derivation."""
    ds = [ds] if isinstance(ds, Derivation) else list(ds)
    vectors, scalars = set(), set()
    for d in ds:
        v, s = names_in(d)
        vectors.update(v)
        scalars.update(s)
    names = tuple(sorted(vectors)), tuple(sorted(scalars))
    # each title in its own derivation's names: x is a vector in one and a scalar in the next
    sections = [Section(words(d.title, _notation(notation), *names_in(d)) or "Derivation %d" % k,
                        [("derivation", d)]) for k, d in enumerate(ds, 1)]
    return Doc(title or "Derivations, step by step", "Functions of vectors, one section each; "
               "derived with every step", sections, [], names, notation)


def as_network(net_or_spec, hidden="relu", output="identity", loss="mse") -> Graph:
    if isinstance(net_or_spec, Graph):
        return net_or_spec
    if isinstance(net_or_spec, str):
        return mlp(parse_spec(net_or_spec), hidden, output, loss)
    if isinstance(net_or_spec, (list, tuple)):
        return mlp(list(net_or_spec), hidden, output, loss)
    raise TypeError(f"expected a Network or a spec like '2-2-1', not {type(net_or_spec).__name__}")


# -- the content ----------------------------------------------------------------------------------
# a handout's options
OPTIONS = ("level", "verbosity", "exercises", "notation", "title", "history", "reveal")


def check_options(options: dict) -> None:
    """Each of a handout's ``options`` (a subset of OPTIONS, by name) checked: one ValueError
    naming the first that is unknown or of the wrong kind. ``exercises`` and ``reveal`` are True
    or False (a truthy "no" printed the exercises); ``title`` text or None; ``notation`` a
    registered preset."""
    for key, value in options.items():
        if key not in OPTIONS:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(OPTIONS)})")
        if key == "level" and not (isinstance(value, str) and value in LEVELS):
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {value!r}")
        if key == "verbosity" and not (value is None or isinstance(value, str)
                                       and value in VERBOSITY):
            raise ValueError(f"verbosity must be one of {', '.join(VERBOSITY)}, not {value!r}")
        if key in ("exercises", "reveal") and not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, not {value!r}")
        if key == "history":  # the loss of each epoch (symgrad.handouts.diagram)
            diagram.check_history(value)
        if key == "title" and not (value is None or isinstance(value, str)):
            raise ValueError(f"title must be text (or None), not {value!r}")
        if key == "notation":
            try:
                _notation(value)
            except TypeError:  # unhashable: a list or a dict
                raise ValueError(f"notation must be a preset's name, not {value!r}") from None


def build(net: Graph, level="matrix", verbosity=None, exercises=True, notation="slides",
          title=None, history=None, brief_past=BRIEF_PAST) -> Doc:
    """The handout's content; ``verbosity`` None is "normal" up to ``brief_past`` layers with
    parameters and "brief" past them (each section its chain rule and result, every g in the
    shared backward pass once): BRIEF_PAST for an article, BEAMER_BRIEF_PAST for slides."""
    check_options({"level": level, "verbosity": verbosity, "exercises": exercises,
                   "notation": notation, "title": title})
    net.check()
    layers = sum(1 for n in net.nodes.values() if n.params)
    if layers > LAYER_LIMIT:
        raise ValueError(f"a handout covers networks of up to {LAYER_LIMIT} layers with "
                         f"parameters; this one has {layers} (symgrad derive NETWORK --wrt W1 "
                         "derives any one parameter)")
    if verbosity is None:
        verbosity = "brief" if layers > brief_past else "normal"
    alg = backprop.algorithm(net)
    naming = "position" if _notation(notation).units_by_position() else None  # ẇ_ij, not w7
    notation = _symbols(net, notation)
    scalar, left_out = _scalarize(net, naming) if level != "matrix" else (None, "")
    matrix = level != "element" or scalar is None
    P = _Printer(net, alg, notation)
    ex_param = _exercise_param(net) if exercises and matrix else None
    sections = [_network_section(P, net, scalar, level, left_out), _loss_section(P, net)]
    grouped = verbosity == "brief" and matrix and scalar is None and not _is_mlp(net)
    if grouped:
        # a graph's brief handout: one section per layer, its parameters' chains sharing every
        # factor but the last (the attention slides were 25 sections, one per parameter)
        for group in _param_groups(net):
            sections.append(_group_section(P, net, group, verbosity, ex_param))
    else:
        for p in net.parameters:
            sections.append(_parameter_section(P, net, p, scalar, matrix, verbosity,
                                               p == ex_param))
    if fits(scalar):  # the XOR slides' nine partials, assembled, and their descent loop
        sections += [s for s in [assembled_section(P, net, scalar, verbosity == "brief")]
                     if s is not None]
    sections.append(backward_section(P, net, alg, grouped))
    sections.append(algorithm_section(P, net, alg, verbosity, ex_param))
    sections += diagram.history_section(history)  # a "Training" section after training
    ex = []
    if ex_param:
        full = _of_cost(net, derive_parameter(net, ex_param), P.notation)  # (the whole
        # chain: it is the exercise)
        P.add(full)
        ex.append(_gradient_exercise(P, net, ex_param, full, verbosity))
    if exercises and scalar is not None:
        unit = _unit_block(verbosity)
        target = _element_exercise(net, scalar)
        if target:
            d = _element(net, target, scalar)
            P.add(d)
            ex.append((r"Find $%s$ unit by unit, as done above for $%s$: which units separate the output "
                       r"from it, and %s"
                       % (P.tex(Partial(d.meta["of"], d.meta["weight"])),
                          P.tex(_first_weight(scalar)), _question(net, d)), [(unit, d)]))
    return Doc(title or f"Backpropagation, step by step: {_arch(net)}", _subtitle(net, level),
               sections, ex, P.names(), notation)


def _symbols(net, notation):
    """The notation writing the network's generated names by role (symgrad.graph.symbols): s⁽¹⁾
    the scores of head 1 where the name s7 said node 7, never two values alike; the batch
    program's names follow (S18 is 𝐑⁽¹⁾ as s18 is 𝐫⁽¹⁾), and a multi-task net's heads (ESL's β⁽ᵏ⁾
    of head k: its registration)."""
    table, names = symbols_of(net)
    # attention's values at a position t, as its notes write them (q1_t: 𝐪ₜ⁽¹⁾, not q_t⁽¹⁾), and
    # its stacked matrices (glossary: defined where first used); a copy (symbols_of is cached)
    table = {**table, **glossary.position_symbols(net, table)}
    names = (*names, *glossary.matrix_names(net))
    return with_symbols(_notation(notation), table, names).with_heads(heads_of(net))


def _unit_block(verbosity) -> str:
    """The block kind of an element-level derivation: "brief" shows it whole, not a step a click
    on slides (the matrix level keeps its clicks). XOR's --level both slides: 57 pages for 27
    frames, the unit-by-unit chains 14 of the clicks."""
    return "whole" if verbosity == "brief" else "derivation"


def _of_cost(net, d: Derivation, notation) -> Derivation:
    """A matrix-level derivation (of the mean) over the cost the notation's notes use: ESL's R =
    Σᵢ Rᵢ sums, so its G's carry no 1/n (the handout said "sum" beside the engine's "mean" and
    G_f ← (1/n)(F − Y)). A sequence network's cost stays the mean over its positions."""
    if cost_sums(notation) and not getattr(net, "seq_len", None):
        return with_cost(net, d, "sum")
    return d


class _Printer:
    """Prints expressions for the document with the names of every derivation in it known."""

    def __init__(self, net, alg, notation):
        self.notation = notation
        self._net, self._derived, self._known = net, {}, {}
        vectors, scalars = set(names_in(alg)[0]), set(names_in(alg)[1])
        vectors.update(net.nodes, net.shapes, ["y"], [net.target_of(o).name for o in net.outputs])
        vectors.update("G_" + n for n in net.nodes)  # (attention's words: G_K = G_Sᵀ Q/√d_k)
        # its Q, K, V, A bold as G, and its values at position t (glossary: defined where used)
        vectors.update(glossary.matrix_names(net))
        vectors.update(n for n, *_ in _notation(notation).symbols if n.endswith("_t"))
        self._names = (vectors, scalars)
        self.shared_said = False  # a group section has said where its g comes from

    def derive(self, p) -> Derivation:
        """net.derive(p), once per parameter (sections and the backward pass both read it),
        each chain starting where an earlier section's g is known (linear in depth)."""
        if p not in self._derived:
            d = self._derived[p] = _of_cost(
                self._net, matrix.derive_parameter(self._net, p, self._known), self.notation)
            self._known.update({g: p for g in d.meta["derived"] if g not in self._known})
            self.add(d)
        return self._derived[p]

    def add(self, d: Derivation):
        v, s = names_in(d)
        self._names[0].update(v)
        self._names[1].update(s)

    def names(self):
        return tuple(sorted(self._names[0])), tuple(sorted(self._names[1]))

    def tex(self, expr) -> str:
        return latex(expr, self.notation)

    def words(self, text: str) -> str:
        return words(text, _notation(self.notation), *self.names())


def _arch(net) -> str:
    each = "" if net.positions is None else f" at each of T = {net.positions} positions"
    if net.flattens:  # (the output is one vector per sequence)
        each = f" on sequences of T = {net.seq_len} positions, flattened"
    if net.several_losses:  # the sizes in order would run the heads together (2-3-1-2)
        return (f"a multi-task network with the outputs {', '.join(net.outputs)}" + each)
    convs = [n for n in net.nodes.values() if n.op == "conv2d"]
    if convs:  # images (words only: a title's text has no × or → in pdflatex's fonts)
        C, H, W = next(n.image for n in net.nodes.values() if n.image is not None)
        k = net.nodes[net.output_node].dim
        return (f"a convolutional network, {C}-channel {H}-by-{W} images to {k} "
                f"output{'s' if k > 1 else ''}")
    if not _is_mlp(net):  # the sizes in order were "a 1-2-2-2-…-6 network" for a transformer
        # (in the title, which wraps: the article's subtitle is one line of a tabular)
        return (_graph_kind(net) + (each if net.flattens else _sequence_words(net)) + ": " +
                ", ".join(_components(net)))
    return "a " + "-".join(str(n.dim) for n in net.nodes.values()
                           if n.op in ("input", "dense")) + " network" + each


# an MLP's ops (a flatten of a sequence only reshapes: its title says "flattened")
MLP_OPS = frozenset({"input", "dense", "act", "softmax", "seq_flatten"})


def _is_mlp(net) -> bool:
    return all(n.op in MLP_OPS for n in net.nodes.values())


def _graph_kind(net) -> str:
    """What a graph that is not an MLP is, from its ops (never its names)."""
    ops = {n.op for n in net.nodes.values()}
    if "scores" in ops:
        return "a transformer block" if {"normalize", "add"} <= ops else "an attention network"
    if "conv1d" in ops:
        return "a convolutional network over sequences"
    if "mul" in ops:
        return "a gated network"
    if "add" in ops:
        return "a residual network"
    return "a network of " + ", ".join(dict.fromkeys(OPS[n.op].label for n in net.nodes.values()
                                                       if n.op not in MLP_OPS))


def _sequence_words(net) -> str:
    T = net.seq_len
    if T is None:
        return ""
    tokens = any(net.tokens(i) for i in net.inputs)
    return f" on sequences of T = {T} {'tokens' if tokens else 'positions'}"


def _skip(net, node) -> bool:
    """An add whose one input is computed from the other: a skip connection (a residual)."""
    def ancestors(name, seen):
        for i in net.nodes[name].inputs:
            if i not in seen:
                seen.add(i)
                ancestors(i, seen)
        return seen
    a, b = node.inputs[:2]
    return a in ancestors(b, set()) or b in ancestors(a, set())


def _components(net) -> list:
    """What a graph that is not an MLP is made of, in order, in each op's registered label: the
    embedding, the attention by heads, the layer norms and residual sums by count."""
    out, done = [], set()
    nodes = [n for n in net.nodes.values() if n.op not in MLP_OPS and n.op != "concat"]
    for n in nodes:
        label = OPS[n.op].label
        if label in done:
            continue
        done.add(label)
        same = [m for m in nodes if m.op == n.op]
        k = len(same)
        if n.op == "embedding":
            out.append(f"an embedding of {vocabulary(net, n)} tokens")
        elif n.op == "scores":
            done.update(OPS[o].label for o in ("attn_softmax", "attend"))
            causal = "causal " if all(m.attr("causal") for m in same) else ""
            out.append(f"{causal}self-attention of {k} head{'s' if k > 1 else ''}")
        elif n.op == "add" and all(_skip(net, m) for m in same):
            out.append(f"{k} residual connection{'s' if k > 1 else ''}")
        else:
            out.append(label if k == 1 else f"{k} {label}s")
    return out


def _subtitle(net, level) -> str:
    hidden = sorted({n.act.name for n in net.nodes.values() if n.op == "act"
                     and n.name not in net.outputs})
    levels = {"matrix": "matrix level", "element": "unit by unit",
              "both": "matrix level and unit by unit"}[level]
    nice = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "identity": "linear"}

    def out_act(o):
        out = net.nodes[o]
        return "softmax" if out.op == "softmax" else out.act.name if out.op == "act" \
            else "identity"
    hidden = [nice.get(h, h) for h in hidden]
    if net.weighted:  # a loss per output (the loss section says which and how weighted)
        names = list(dict.fromkeys(term_names(t.loss)[0] for t in net.losses))
        tail = [f"{len(net.losses)} loss{'es' if len(net.losses) > 1 else ''} "
                f"({', '.join(names)})"]
    else:
        tail = [f"{out_act(net.output_node)} output", f"{loss_names(net)[0]} loss"]
    parts = ([f"{', '.join(hidden)} hidden units"] if hidden else []) + tail
    return text_escape(", ".join(parts).capitalize()[:1] + ", ".join(parts)[1:]
                       + f"; derived at the {levels}")


def _scalarize(net, naming=None):
    """(the network unit by unit, "") or (None, why it is left out)."""
    total = sum(r * c for r, c in net.shapes.values())
    if total > ELEMENT_LIMIT:
        return None, f"{total} numbers are too many to write out one by one"
    if net.flattens:  # (element.scalarize refuses it: the matrix level derives it)
        return None, "a flatten of a sequence is derived at the matrix level only"
    try:
        S = element.scalarize(net, naming)
    except element.TooLarge:  # the element level's own size limits (attention at every position)
        T = element.unrolled(net)
        return None, ("written out at every one of its T = %d positions, its loss is too long "
                      "to derive one unit at a time" % T if T else
                      "its loss written out is too long to derive one unit at a time")
    S.naming = naming
    return S, ""


def _gradient_exercise(P, net, p, full: Derivation, verbosity: str):
    """The exercise on p's gradient. The backward pass and the algorithm print every
    parameter's one-example gradient, so "find ∇ℓ" would be answered in the body: the exercise
    asks for the minibatch form instead (the batch step, which the body leaves out below
    verbosity "full"; the full algorithm prints every batch form), by way of the chain the
    left-out section would have shown."""
    what = _role(net, p)
    sym = P.tex(net.sym(p))
    batch = next((s for s in full.steps if s.rule is StepKind.BATCH), None)
    if batch is None:  # no batch form to ask for: the one-example gradient, as before
        return (r"Find $%s$, the gradient of the loss with respect to the %s $%s$. Write the "
                r"chain of Jacobians with their shapes, then simplify."
                % (P.tex(Grad(sp.Symbol("ℓ"), net.sym(p))), what, sym),
                [("derivation", _filtered(full, verbosity))])
    d = _filtered(full, verbosity)
    if batch not in d.steps:
        d = Derivation(d.title, d.steps + [batch], batch.rhs, d.meta)
    g = g_name(P.notation)
    return (r"The section on the %s $%s$ was left out. Write the chain of Jacobians for $%s$ "
            r"with their shapes and simplify it to the $%s$ of the backward pass; then find "
            r"$%s$, the gradient of the %s of the losses over a minibatch of $%s$ examples, "
            r"with the examples' $%s$'s stacked as the rows of one matrix."
            % (what, sym, P.tex(Grad(sp.Symbol("ℓ"), net.sym(p))), g, P.tex(batch.lhs),
               cost_word(P.notation), _notation(P.notation).batch, g),  # (the feature notes' N: their n is an index)
            [("derivation", d)])


def _question(net, d) -> str:
    """The exercise's last question, a true one: "when is it zero?" where a unit's derivative
    is zero on a region (ReLU's, for z ≤ 0: a case of the result is 0); else where the hidden
    activation's derivative is largest (σ′ peaks at 1/4, tanh′ at 1, both at 0), or whether it
    can be zero at all (it cannot: softplus′ = σ > 0)."""
    cases = d.result.atoms(sp.Piecewise) if hasattr(d.result, "atoms") else ()
    if any(any(e == 0 for e, _ in pw.args) for pw in cases):
        return "when is it zero?"
    acts = [n.act for n in net.nodes.values() if n.op == "act" and n.name != net.output_node]
    # (by the function itself, not its name: a user's activation may be called "sigmoid")
    peaked = next((tex for a in acts for name, tex in (("sigmoid", r"\sigma'"),
                                                       ("tanh", r"\tanh'"))
                   if a.same_function(ACTIVATIONS[name])), None)
    if peaked is not None:
        return r"for which input of the unit is $%s$ largest, and how large is it there?" % peaked
    return "can it be zero?"


def _first_weight(scalar):
    return next(iter(scalar.params.values()))[0]


def _filtered(d: Derivation, verbosity: str) -> Derivation:
    """brief: the chain rule and the results; normal: all but the batch form; full: all."""
    if verbosity == "full":
        return d
    keep = {StepKind.CHAIN_RULE, StepKind.UNVECTORIZE, StepKind.CASES, StepKind.SUM} \
        if verbosity == "brief" else None
    steps = [s for s in d.steps if s.rule is not StepKind.BATCH
             and (keep is None or s.rule in keep)]
    return Derivation(d.title, steps or d.steps[-1:], d.result, d.meta)


def _element(net, weight, scalar):
    of = "output" if len(scalar.units[net.output_node]) == 1 and not net.several_losses \
        else "loss"
    d = element.derive_element(net, weight.name, of=of, naming=getattr(scalar, "naming", None))
    d.meta["of"] = scalar.units[net.output_node][0] if of == "output" else sp.Symbol("ℓ")
    return _trimmed(d)


def _trimmed(d: Derivation, limit: float = 52) -> Derivation:
    """Leave out the written-out forms that would run off the page and cannot be broken (a huge
    σ(…) or cases): the chain rule in the units' symbols is the result the notes keep."""
    keep = {StepKind.CHAIN_RULE, StepKind.JACOBIAN, StepKind.SUM, StepKind.BACKWARD}

    def fits(s):
        if isinstance(s.rhs, (sp.Add, sp.MatAdd)) or (isinstance(s.rhs, sp.Derivative)
                                                      and isinstance(s.rhs.expr, sp.Add)):
            return sp.count_ops(s.rhs) <= 60
        return tex_width(latex(s.rhs)) <= limit

    steps = [s for s in d.steps if s.rule in keep or fits(s)]
    return Derivation(d.title, steps, d.result, d.meta)


def _element_exercise(net, scalar):
    """The notes' exercise, ∂ŷ/∂b2: the last entry of the first bias (else of the first weight)."""
    for p in net.parameters:
        M = scalar.params[p]
        if M.cols == 1 and len(M) > 1:
            return M[len(M) - 1]
    M = scalar.params[net.parameters[0]]
    return M[len(M) - 1] if len(M) > 1 else None


def _exercise_param(net):
    """∇ of the first bias of a layer with weights (else of the first parameter that is not a
    weight, else the last weight): its section becomes an exercise. A layer's bias, not merely
    the first non-weight: the attention handout asked for its embedding table E, calling it a
    bias, and its solution used onehot(tok) and a reshape the handout never defined (issue 13)."""
    if len(net.parameters) < 2:
        return None
    others = [p for p in net.parameters if not net.is_weight(p)]
    biases = [p for p in others if _role(net, p) == "bias"]
    return (biases or others or net.parameters[-1:])[0]


def _role(net, p) -> str:
    """What the parameter p is, in a reader's words: "weights" (a layer's W), "bias" (a
    parameter after the weights of a layer with weights), else "parameter of the <op's
    registered label>" (the embedding's table, a layer norm's γ and β)."""
    if net.is_weight(p):
        return "weights"
    node = next(n for n in net.nodes.values() if p in n.params)
    op = OPS.get(node.op)
    if op is not None and op.weight and node.params.index(p) > 0:
        return "bias"
    return "%s parameter" % (op.label if op is not None and op.label else node.op)


# -- sections -------------------------------------------------------------------------------------
def _count(n: int) -> str:
    """A count in a sentence, its digits grouped by threes with a thin space from five digits on
    (235\\,146: MNIST's 235146 read as one run of digits), as math so that KaTeX and MathJax set
    the same space; up to 9999 as they are (SI groups from five digits)."""
    if n < 10_000:
        return str(n)
    return r"$%s$" % f"{n:,}".replace(",", r"\,")


def _network_section(P, net, scalar, level, left_out="") -> Section:
    sec = Section("The network and its forward propagation")
    x, out = net.inputs[0], net.output_node
    params = ", ".join(r"$%s \in \mathbb{R}^{%s}$" % (P.tex(net.sym(p)), _dims(net.shapes[p]))
                       for p in net.parameters)
    total = sum(r * c for r, c in net.shapes.values())
    if net.several_losses:
        outs = " and ".join(r"$%s \in \mathbb{R}^{%d}$" % (P.tex(net.sym(o)), net.nodes[o].dim)
                            for o in net.outputs)
        sec.text(r"The network maps an input $%s \in \mathbb{R}^{%d}$ to the outputs %s, each "
                 r"with a loss of its own. Its parameters are %s: %s numbers in all."
                 % (P.tex(net.sym(x)), net.nodes[x].dim, outs, params, _count(total)))
        if getattr(P.notation, "head_of", ()):  # (ESL's β⁽ᵏ⁾: what the number above means)
            sec.text("Each output is computed by a layer of its own, written with the output's "
                     "number as a superscript: %s." % "; ".join(
                "%s for $%s$" % (", ".join("$%s$" % P.tex(net.sym(n)) for r, n in h.items()
                                           if r != "batch pre"), P.tex(net.sym(o)))
                for o, h in zip(net.outputs, heads_of(net))))
    else:
        where, each = "", ""
        if net.tokens(x) is not None and net.nodes[x].positions is not None:
            where = (" (%d tokens, each an id in a vocabulary of %d)"
                     % (net.nodes[x].positions, net.tokens(x)))
        if net.positions is not None:
            each = " at each of its %d positions" % net.positions
        sec.text(r"The network maps an input $%s \in %s$%s to an output $%s \in "
                 r"\mathbb{R}^{%d}$%s. Its parameters are %s: %s numbers in all."
                 % (P.tex(net.sym(x)), value_space(net, x), where, P.tex(net.sym(out)),
                    net.nodes[out].dim, each, params, _count(total)))
    sec.text("Forward propagation computes each value from the ones before it, for one example "
             "(vectors are columns):")
    if _notation(P.notation).row_weights:
        W = next(p for p in net.parameters if net.is_weight(p))
        sec.text(r"In this notation $%s$ has one column per unit of the next layer ($%s$ joins "
                 r"input $i$ to unit $j$) and row vectors are multiplied from the right; in "
                 r"column form that is the transpose $%s$ below." % (
                     P.tex(net.sym(W).T), _notation(P.notation).entry(W, "ij").tex(),
                     P.tex(net.sym(W))))
    rows = [r"%s &= %s && \in \mathbb{R}^{%d}" % (P.tex(net.sym(n)), P.tex(net.definition(n)),
                                                  node.dim)
            for n, node in net.nodes.items() if node.op != "input"]
    # normalize, std, [·]_{1:T}, Q, K, V, A, m_t, e_t: defined before the equations use them
    # (after them, the article's forward pass on p.1 used [k]_{1:T} and m_t defined on p.2)
    if glossary.definitions(P, net):
        sec.items(glossary.definitions(P, net))
    sec.math(rows)
    sec.blocks += [("picture", b) for b in [diagram.network_block(P, net, scalar)] if b]
    if scalar is None and level != "matrix":
        sec.text(r"(The unit-by-unit view is left out: %s; the matrix form below holds for "
                 r"any size.)" % text_escape(left_out or f"{total} numbers are too many to "
                                             "write out one by one"))
    if scalar is not None:
        ws = [w for p in net.parameters if net.is_weight(p) for w in scalar.params[p]]
        sec.text("Unit by unit, with the weights %s%s:" % (
            "named by their place in their matrix" if scalar.naming == "position" else
            r"numbered $%s, \ldots, %s$ in order" % (P.tex(ws[0]), P.tex(ws[-1])),
            ", as in the picture" if any(k == "picture" for k, _ in sec.blocks) else ""))
        shown = [r"%s = %s" % (P.tex(net.sym(p)), P.tex(sp.ImmutableMatrix(M)))
                 for p, M in scalar.params.items()]
        per = len(shown) if len(shown) <= 4 else 3  # (attention's eight in one row: 262pt over)
        sec.math(_param_rows(shown) if net.weighted else
                 [r",\quad ".join(shown[i:i + per]) for i in range(0, len(shown), per)])
        sec.math([r"%s &= %s" % (P.tex(u), P.tex(e)) for u, e in scalar.defs.items()])
        outs = list(scalar.units[net.output_node])
        if len(outs) == 1 and not net.several_losses and \
                sp.count_ops(scalar.explicit(outs[0])) <= 60:
            sec.text("so the output, written out in the weights, is")
            written = Derivation()  # a derivation block, so the printer breaks it to fit
            written.add(outs[0], scalar.explicit(outs[0]), rule=StepKind.DEFINITION)
            sec.blocks.append(("derivation", written))
    return sec


PARAM_ROW = 60  # tex_width of a row of parameter matrices that fits an article and a slide


def _param_rows(items) -> list:
    """The parameter matrices, as many a row as fit the page (a multi-task net's two heads made
    one row 100pt too wide)."""
    rows, row = [], []
    for item in items:
        if row and tex_width(r",\quad ".join(row + [item])) > PARAM_ROW:
            rows.append(row)
            row = []
        row.append(item)
    return [r",\quad ".join(r) for r in rows + [row]]


def _dims(shape) -> str:
    r, c = shape
    return str(r) if c == 1 else r"%d \times %d" % (r, c)


def _loss_section(P, net) -> Section:
    if net.weighted:
        return _losses_section(P, net)
    sec = Section("The loss")
    out = net.output_node
    rows = _loss_rows(P, net, net.loss, out, net.target, r"\ell")
    _, label, what = loss_names(net)
    rows.append(cost_tex(r"%s &= \frac{1}{n} \sum_{i=1}^{n} \ell^{(i)}", P.notation)
                % cost_name(P.notation, label))  # ESL: R = Σ_i ℓ^(i), a sum, no f_MSE
    sec.text(P.words(f"For one example (x, y) the loss ℓ is {what}; over a minibatch of n "
                     f"examples the cost f is their {cost_word(P.notation)}:"))
    sec.math(rows)
    if net.penalty != 0:
        _penalty(P, net, label, sec)
    sec.text(r"The gradient of $%s$ is the %s of the gradients of $\ell$, so every derivation "
             r"below is for one example." % (cost_name(P.notation), cost_word(P.notation)))
    return sec


def _losses_section(P, net) -> Section:
    """A multi-task loss: each term ℓ_k of its own output and target, their weighted sum ℓ,
    and the cost over the examples as the notation's notes write it (the slides' f, its mean;
    ESL's R, its sum: issue 13's esl multi-task handout printed f = (1/n) Σ ℓ under R's words)."""
    sec = Section("The loss")
    k = len(net.losses)
    sec.text(P.words(f"The loss has {k} term{'s' if k > 1 else ''}, each of one output against "
                     "its own target:" if k > 1 else "The loss is one term, weighted:"))
    rows = []
    for i, t in enumerate(net.losses, 1):
        rows += _loss_rows(P, net, t.loss, t.output, net.target_of(t.output), r"\ell_{%d}" % i)
    total = " + ".join((r"\ell_{%d}" % i if t.weight == 1 else
                        r"%s \, \ell_{%d}" % (sp.latex(t.weight), i))
                       for i, t in enumerate(net.losses, 1))
    rows.append(r"\ell &= %s" % total)
    cost, word = cost_name(P.notation), cost_word(P.notation)
    rows.append(cost_tex(r"%s &= \frac{1}{n} \sum_{i=1}^{n} \ell^{(i)}", P.notation) % cost)
    sec.math(rows)
    sec.text(P.words(f"For one example ℓ is the weighted sum of the terms; over a minibatch of n "
                     f"examples the cost f is its {word}, the weighted sum of each term's "
                     f"{word}. An output read by one term only gets the gradient of that term, "
                     "times its weight; a value that feeds several outputs adds what each passes "
                     "back."))
    if net.penalty != 0:
        _penalty(P, net, "", sec)
    sec.text(r"The gradient of $%s$ is the %s of the gradients of $\ell$, so every derivation "
             r"below is for one example." % (cost, word))
    return sec


def _loss_rows(P, net, loss, out, target, ell):
    """The rows defining one loss of ``out`` against ``target``, as ``ell`` &= …."""
    yh, y = P.tex(net.sym(out)), P.tex(target)
    nota = _notation(P.notation)
    yk = nota.entry(out, "k").tex()
    tk = nota.entry("y", "k").tex() if target.name == "y" else \
        TeXName("{%s}" % y, sub="k").tex()
    formula = {"mse": r"\ell &= \tfrac{1}{2} \left\| %s - %s \right\|^{2} = \tfrac{1}{2} \sum_{k} "
                      r"\left(%s - %s\right)^{2}" % (yh, y, yk, tk),
               "bce": r"\ell &= -\sum_{k} \left[%s \log %s + \left(1 - %s\right) \log\left(1 - %s"
                      r"\right)\right]" % (tk, yk, tk, yk),
               "cross_entropy": r"\ell &= -\sum_{k} %s \log %s" % (tk, yk)}
    if loss.name in formula:
        rows = [formula[loss.name]]
    else:
        p, t = loss.L.variables
        yhs, ys = sp.Symbol("yhat", real=True), sp.Symbol("y", real=True)
        rows = [r"\ell &= \sum_{k} L\left(%s, %s\right)" % (yk, tk),
                r"L\left(\hat{y}, y\right) &= %s" % P.tex(loss.L.expr.xreplace({p: yhs,
                                                                              t: ys}))]
    if ell != r"\ell":
        rows[0] = ell + rows[0][len(r"\ell"):]
    return rows


def _penalty(P, net, label, sec) -> None:
    """The weight penalty λΩ(θ), Ω = ½ Σ‖W‖² over the weights only, as the notation's notes add
    weight decay to their cost. A mean (the slides): J = ℓ + λΩ for one example and the
    minibatch's objective its mean f + λΩ (Algorithm 6.4's J). A sum (ESL's R(θ) = Σ_i R_i):
    the penalty is added once to the sum, J = R + λΩ, as derive's index level and the update
    do (Σ_i J^(i) would count it n times, so no per-example J is written; issue 13's esl
    handout printed the mean's (1/n) Σ J^(i) = f_MSE + λΩ under R)."""
    norms = " + ".join(r"\left\| %s \right\|^{2}" % P.tex(net.sym(W)) for W in net.weights)
    omega = (r"\Omega(\theta) = \tfrac{1}{2} \left(%s\right), \quad \lambda = %s"
             % (norms, sp.latex(net.penalty)))
    if cost_sums(P.notation):
        sec.text(r"With weight decay the objective is $J$: the cost $%s$ plus $\lambda$ times a "
                 r"penalty $\Omega$ on the weights only (not the biases), added once to the sum "
                 r"over the examples:" % cost_name(P.notation))
        sec.math([r"J &= %s + \lambda \, \Omega(\theta), \quad %s" % (cost_name(P.notation),
                                                                      omega)])
        return
    sec.text(r"With the weight penalty the objective of one example is $J$, and the "
             r"minibatch's is its mean (the penalty $\Omega$ covers the weights only):")
    sec.math([r"J &= \ell + \lambda \, \Omega(\theta), \quad %s" % omega,
              batch_tex(r"\frac{1}{n} \sum_{i=1}^{n} J^{(i)} &= %s + \lambda \, \Omega(\theta)",
                        P.notation) % cost_name(P.notation, label)])


def _parameter_section(P, net, p, scalar, matrix, verbosity, exercise) -> Section:
    sym = net.sym(p)
    sec = Section(r"The gradient with respect to $%s$" % P.tex(sym))
    if exercise:
        sec.text(r"This one is left as an exercise: see the exercises at the end (the solution "
                 r"is on a separate page).")
        return sec
    if matrix:
        d = P.derive(p)
        what = r"$\operatorname{vec}[%s]$" % P.tex(sym) if net.is_weight(p) else "$%s$" % \
            P.tex(sym)
        sec.text(r"The chain rule of multivariate calculus, one Jacobian per value between the "
                 r"loss and %s (the shape of each factor underneath):" % what)
        sec.blocks.append(("derivation", _filtered(d, verbosity)))
        result = next(s for s in reversed(d.steps)
                      if s.rule in (StepKind.UNVECTORIZE, StepKind.SIMPLIFY))
        undefined = _g_undefined(net, d, _filtered(d, verbosity), result.rhs)
        if undefined:
            sec.text(r"where %s, the gradient of the loss reaching that value (the chain's first "
                     r"factors multiplied out, computed once in the shared backward pass):"
                     % ", ".join(r"$%s \doteq %s$" % (P.tex(g), P.tex(Grad(sp.Symbol("ℓ"),
                                                                             net.sym(n))))
                                 for n, g in undefined))
        sec.blocks.append(("boxed", r"%s = %s" % (P.tex(result.lhs), P.tex(result.rhs))))
    if scalar is not None and p in scalar.params:
        w = scalar.params[p][0]
        d = _element(net, w, scalar)
        P.add(d)
        sec.text(r"Unit by unit, for the entry $%s$ of $%s$:" % (P.tex(w), P.tex(sym)))
        sec.blocks.append((_unit_block(verbosity), _filtered(d, verbosity)))
    return sec


def _g_undefined(net, full: Derivation, shown: Derivation, result) -> list:
    """[(node, g)] for each g the boxed result reads that the shown steps never define: the
    brief slides keep the chain rule and the result, so the 2-2-1 slide 6 boxed ∇W = g xᵀ
    with g first defined three slides later (issue 13)."""
    bw = full.meta.get("backward") if full.meta else None
    if bw is None or not hasattr(result, "has"):
        return []
    defined = {s.lhs for s in shown.steps if s.rule is StepKind.BACKWARD}
    return [(n, g) for n, (g, *_) in bw.g.items()
            if result.has(g) and g not in defined and g.T not in defined]


def _param_groups(net) -> list:
    """The parameters by the node that first reads them (W and b of one layer, γ and β of one
    layer norm), in the order of net.parameters."""
    owner = {}
    for n in net.nodes.values():
        for p in n.params:
            owner.setdefault(p, n.name)
    groups = {}
    for p in net.parameters:
        groups.setdefault(owner.get(p, p), []).append(p)
    return list(groups.values())


def _group_section(P, net, params, verbosity, ex_param) -> Section:
    """One layer's parameters in one section: the first one's chain rule (brief), every one's
    result; the g of the layer's value is the shared backward pass's, computed once."""
    shown = [p for p in params if p != ex_param]
    if len(params) == 1 or not shown:
        return _parameter_section(P, net, params[0], None, True, verbosity,
                                  params[0] == ex_param)
    syms = [r"$%s$" % P.tex(net.sym(p)) for p in params]
    sec = Section(r"The gradients with respect to %s" % (", ".join(syms[:-1]) + " and " +
                                                        syms[-1]))
    first = shown[0]
    d = P.derive(first)
    what = r"$\operatorname{vec}[%s]$" % P.tex(net.sym(first)) if net.is_weight(first) else \
        "$%s$" % P.tex(net.sym(first))
    others = [r"$%s$" % P.tex(net.sym(p)) for p in shown[1:]]
    # the shared g said once, then referred to (issue 13: attention's sections 5-15 each
    # repeated "the g they share is the shared backward pass's, computed once")
    g = g_name(P.notation)
    shared = (r"the $%s$ %s is the shared backward pass's, computed once"
              % (g, "they share" if others else "it starts from")) if not P.shared_said \
        else r"%s $%s$ as above" % ("their" if others else "its", g)
    P.shared_said = True
    same = (r"the chain for %s is the same but for its last factor, and " % " and ".join(others)
            if others else "")
    sec.text(r"The chain rule for %s, one Jacobian per value between the loss and it; %s%s:"
             % (what, same, shared))
    chain = [st for st in d.steps if st.rule is StepKind.CHAIN_RULE]  # (the results boxed below)
    sec.blocks.append(("derivation", Derivation(d.title, chain, d.result, d.meta)))
    for p in shown:
        d = P.derive(p)
        result = next(s for s in reversed(d.steps)
                      if s.rule in (StepKind.UNVECTORIZE, StepKind.SIMPLIFY))
        sec.blocks.append(("boxed", r"%s = %s" % (P.tex(result.lhs), P.tex(result.rhs))))
    if ex_param in params:
        sec.text(r"The gradient with respect to $%s$ is left as an exercise: see the exercises "
                 r"at the end (the solution is on a separate page)." % P.tex(net.sym(ex_param)))
    return sec


# -- files: what `symgrad handout` does ---------------------------------------------------------
def check_output_path(out) -> None:
    """Refuse at once, before any work, an output path that cannot be written: its directory
    missing (a .pdf made it, a .tex or .md failed with the raw errno, after the work), or a
    directory itself."""
    from pathlib import Path
    if not str(out).strip():
        raise ValueError("-o: the output path is empty")
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"-o {out}: that is a directory; give a file name")
    if not parent.is_dir():
        raise ValueError(f"-o {out}: the directory {parent} does not exist")


def handout_file(target: str, out: str | None = None, fmt: str | None = None,
                 hidden="relu", output="identity", loss="mse", timeout: float | None = None,
                 on_overrun=None, **options) -> str:
    """What ``symgrad handout`` does: TARGET is a spec ("2-2-1") or a Python file defining a
    Network ``net`` (and optionally a dict ``handout_options``); write ``out`` (.tex, .pdf, .md)
    or return the document. Options left None come from the file, then the defaults."""
    if out is not None:
        check_output_path(out)
    if target.endswith(".txt"):  # a matrix-calculus worksheet: one problem a line
        net, file_opts = read_problems(target), {}
    elif target.endswith(".py"):
        net, file_opts = load_network_file(target, timeout, on_overrun)
    else:
        net, file_opts = load_network(target, hidden, output, loss), {}
    opts = {k: v for k, v in {**file_opts, **{k: v for k, v in options.items()
                                              if v is not None}}.items()
            if k in OPTIONS}
    suffix = str(out).rsplit(".", 1)[-1].lower() if out and "." in str(out) else ""
    if suffix not in ("", "tex", "pdf", "md"):
        raise ValueError(f"-o {out}: the output must end in .tex, .pdf or .md")
    fmt = fmt or ("markdown" if suffix == "md" else "article")
    if (suffix == "md") != (fmt == "markdown") and suffix:
        raise ValueError(f"-o {out}: .md is for the markdown format, .tex and .pdf for "
                         "article and beamer")
    text = handout(net, fmt=fmt, **opts)
    if suffix == "pdf":
        compile_pdf(text, out)
    elif out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def load_network_file(path: str, timeout: float | None = None, on_overrun=None):
    """The user's Python file → (its Network, its ``handout_options``), through the one loader of
    network files (``symgrad.network``), which raises one-line ValueErrors naming the file. The
    options are checked here, once the file has run (a preset it registers is known): an unknown
    key (a misspelt "levle" was ignored without a word) or a value of the wrong kind is one
    ValueError naming the file and the key."""
    net, ns = run_network_file(path, timeout, on_overrun)
    opts = ns.get("handout_options", {})
    if not isinstance(opts, dict):
        raise ValueError(f"{path}: handout_options must be a dict such as {{'level': 'both'}}, "
                         f"not a {type(opts).__name__}")
    try:
        check_options(opts)
    except ValueError as e:
        raise ValueError(f"{path}: handout_options: {e}") from None
    return net, dict(opts)


__all__ = ["handout", "load_network_file", "handout_file", "gradient_summary", "build",
           "as_network", "derivations_doc", "Doc", "Section", "LEVELS", "VERBOSITY", "OPTIONS",
           "check_options"]
