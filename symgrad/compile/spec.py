"""What a network kernel takes: parameter shapes, argument checks and conversion, initial weights.

Where it sits: compile (derive → simplify → **compile** → train). :mod:`.kernel` builds its argument
checks on :class:`Spec`; ``symgrad.train`` and ``symgrad.check`` validate data through it once, and
``Network.init_params`` is :func:`init_params`.
"""
from __future__ import annotations

import math

import numpy as np

from symgrad.derive import backprop
from symgrad.compile.common import FLOATS, require_code
from symgrad.graph.ops import OPS

# A network kernel prints numpy (whole batches, predict) and, for tiny nets, the program unrolled
# over Python floats (kernel.py's scalar path, and the "python" backend): a primitive without code
# for either fails while compiling, not at the first call of a small batch.
BACKENDS = ("numpy", "python")


def param_shapes(net) -> dict:
    """Parameter name -> numpy shape: W (d_out, d_in) as in the notes, a bias 1-D (d,), a conv
    weight (O, C, kh, kw) as torch's (an op's ``arrays`` rule says so)."""
    out = {p: s if net.is_weight(p) or net.is_table(p) else (s[0],)  # E (V, d) as torch's
           for p, s in net.shapes.items()}
    for node in net.nodes.values():
        rule = OPS[node.op].arrays if node.op in OPS else None
        if rule:
            out.update(rule(net, node))
    return out


def work(net) -> int:
    """Multiply-adds of one example's forward pass through the weights: a dense W's entries, a
    conv weight's entries times its output positions (what decides the unrolled scalar path)."""
    total = 0
    for node in net.nodes.values():
        if node.params and net.is_weight(node.params[0]) or node.op == "dense_transposed":
            r, c = net.shapes[node.params[0]]
            per = node.dim // r if node.op == "conv2d" else 1  # positions of each channel
            total += r * c * per
    return total


class Spec:
    """What a kernel checks its arguments against; the slow path of validation and conversion.

    One input: X is an (n, d) array. Several inputs: X is a dict {input name: (n, d) array}, every
    one with the same n; ``xvars`` are the kernel's local names for them. The parameters' dtype
    (float32 or float64, all alike) is the kernel's: X and Y are converted to it.

    A sequence network (``T``, its positions, not None): X is (n, T, d) and Y (n, T, k), or (n, T)
    integer labels for cross_entropy, as torch lays them; ``check`` returns them so (train shuffles
    whole sequences), and the kernel reads their n·T positions as the rows of the batch program
    (a reshape: a view for the contiguous arrays ``check`` returns), ``rows`` checks targets in
    that flat form. After a flatten the output is one vector per sequence (``out_T`` None): Y is
    then (n, k) or (n,) labels, one row per sequence, and the batch program's values after the
    flatten have those n rows (a dropout mask there too: (n, d))."""

    def __init__(self, net, program=None, relu_grad_at_zero=None):
        program = program or backprop.program(net)
        require_code([e.rhs for e in program.eqns], BACKENDS)
        self.relu_grad_at_zero = (net.relu_grad_at_zero if relu_grad_at_zero is None
                                  else relu_grad_at_zero)
        self.net, self.shapes = net, param_shapes(net)
        self.names = list(self.shapes)  # the user's names: keys of params, never code
        self.pvars = [v.sym.name for v in program.params]  # the kernel's locals (generated)
        self.inputs = list(net.inputs)
        self.T = net.seq_len  # None: vectors, one example a row
        # each output's T (None: one vector per example, after a flatten or of vectors)
        self.out_Ts = [net.nodes[o].positions for o in net.outputs]
        self.out_T = self.out_Ts[0]
        # inputs of one vector per sequence in a network of sequences (a mask after a flatten)
        self.per_example = {i for i in net.inputs if net.per_example(i)}
        self.d_ins = [net.nodes[i].dim for i in self.inputs]
        self.d_in = self.d_ins[0]
        # token inputs: {input: V}; their arrays are integers (n,) or (n, T), never converted
        self.tokens = {i: net.tokens(i) for i in self.inputs if net.tokens(i) is not None}
        self.d_out = net.nodes[net.output_node].dim
        net.loss.check_output(net.nodes[net.output_node])  # again: net.loss may be set directly
        # several losses: Y is a dict {output: its targets}, one array per term, in term order;
        # their integer labels are made one-hot by check (the kernel reads (n, k) floats)
        self.several = net.several_losses
        self.outputs = net.outputs
        self.d_outs = [net.nodes[o].dim for o in self.outputs]
        self.labels_of = [t.loss.labels for t in net.losses]
        self.labels = self.labels_of[0] and not self.several  # the kernel takes labels as they are
        self.weights = work(net)
        # image inputs: {input: (C, H, W)}; X is (n, C, H, W), read as (n, C·H·W) (a view)
        self.images = {i: net.nodes[i].image for i in self.inputs
                       if net.nodes[i].image is not None}
        self.out_image = net.nodes[net.output_node].image
        # the program's image values and their g's: never written into the kernel's (d, n)
        # C-ordered buffers, whose transposes an image op would have to copy to read as
        # (n, C, H, W) (a 3×32×32 CNN step spent 10 of 88 ms in those copies)
        self.image_values = {e.out.sym for e in program.eqns
                             if net.nodes.get(e.out.of) is not None
                             and net.nodes[e.out.of].image is not None}
        self.Xs = [v.sym for v in program.inputs]
        self.X, self.Y = self.Xs[0], program.target.sym
        self.Ys = [v.sym for v in program.targets]
        self.xvars = ["X"] if len(self.inputs) == 1 else [f"_x{k}" for k in range(len(self.inputs))]
        self.yvars = [f"_y{k}" for k in range(len(self.Ys))] if self.several else ["Y"]

    def check(self, params, X, Y=None, targets=False):
        """[each parameter, each input, Y] converted, or a one-line ValueError saying what's wrong;
        ``targets``: Y is required (a kernel's loss needs it); True says "the kernel", a string
        names who else needs them ("training")."""
        if targets and Y is None:
            who = targets if isinstance(targets, str) else "the kernel"
            if self.several:
                raise ValueError(f"Y: {who} needs the targets, {self.ydict()}; got None "
                                 "(net.predict(params, X) needs none)")
            raise ValueError(f"Y: {who} needs the targets, {self.yshape('n')}"
                             + ("" if self.out_T else " one row per example")
                             + (f" or {self.lshape('n')} integer labels" if self.labels else "")
                             + "; got None (net.predict(params, X) needs none)")
        for what, a in (("X", X), ("Y", Y)):
            for k, v in (a.items() if isinstance(a, dict) else [(None, a)]):
                if is_dask(v):  # (np.asarray would compute it all, in memory)
                    raise ValueError(out_of_core(what if k is None else f"{what}[{k!r}]"))
        out = self.params(params)
        dt = out[0].dtype if out else np.dtype("float64")
        xs = self.examples(self.with_masks(X), dt)
        out += xs
        if Y is not None and self.several:
            out += self.targets(Y, xs[0].shape[0], dt)
        elif Y is not None:
            out.append(self.target(Y, xs[0].shape[0], dt))
        self.finite(out)
        return out

    def ydict(self) -> str:
        """The targets of several losses, in words: {'reg': (n, 2) array, 'cls': (n, 3) array
        or (n,) integer labels}."""
        each = ", ".join(f"{o!r}: {self.xshape('n', d, T=T)} array"
                         + (f" or {self.lshape('n', T)} integer labels" if lab else "")
                         for o, d, lab, T in zip(self.outputs, self.d_outs, self.labels_of,
                                                 self.out_Ts))
        return f"a dict {{{each}}}"

    def targets(self, Y, n, dt) -> list:
        """Several losses: Y a dict {output node: its targets}, exactly the loss's outputs; each
        checked as one loss's Y is, integer labels made one-hot; a list in term order."""
        outs = self.outputs
        if not isinstance(Y, dict):
            raise ValueError(f"Y: this network's loss has {len(outs)} terms, one per output; give "
                             f"{self.ydict()}")
        check_keys("Y", Y, outs, "outputs of the loss")
        out = []
        for k, o in enumerate(outs):
            a = self.target(Y[o], n, dt, k)
            if a.dtype.kind in "iu":  # labels: one-hot rows, as the kernel reads them
                a = np.eye(self.d_outs[k], dtype=dt)[a]
            out.append(a)
        return out

    def params(self, params):
        want = ", ".join(self.names)
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict of arrays named {want}")
        extra = [repr(k) for k in params if k not in self.shapes]
        if extra:
            raise ValueError(f"params: unexpected {', '.join(extra)} (expected {want})")
        out, dt = [], None
        for p in self.names:
            if p not in params:
                raise ValueError(f"params: missing {p!r} (expected {want})")
            a = np.asarray(params[p])
            if a.dtype not in FLOATS:
                raise ValueError(f"params[{p!r}] is {a.dtype}; expected float32 or float64")
            if a.shape != self.shapes[p]:
                raise ValueError(f"params[{p!r}] has shape {a.shape}; expected {self.shapes[p]}")
            if dt is not None and a.dtype != dt:
                raise ValueError(f"params[{p!r}] is {a.dtype} but params[{self.names[0]!r}] is {dt}"
                                 " (all parameters share one dtype)")
            dt = a.dtype
            out.append(a)
        return out

    def with_masks(self, X, draw=None):
        """X completed with every dropout mask it lacks: ones (dropout off), or, with ``draw`` a
        numpy Generator, masks drawn as inverted dropout: 1/(1 − p) kept, 0 dropped."""
        masks = self.net.masks
        if not masks:
            return X
        data = [i for i in self.inputs if i not in masks]
        if not isinstance(X, dict):
            if len(data) != 1:
                return X  # examples() says what is wrong
            X = {data[0]: X}
        present = next((np.asarray(X[k]) for k in data if k in X), None)
        if present is None or present.ndim < 1:
            return X
        n, out = present.shape[0], dict(X)
        for k, p in masks.items():
            if k in out and draw is None:
                continue
            shape = (n, *self.net.nodes[k].shape)  # (n, T, d) for a sequence: a mask per entry
            out[k] = (np.ones(shape) if draw is None else
                      (draw.random(shape) >= p) / (1 - p))
        return out

    def xshape(self, n, d, image=None, T="inputs") -> str:
        """How a value of d features is laid out: (n, d), (n, T, d) for a sequence, (n, C, H, W)
        for an image; ``T`` the value's positions (by default the inputs')."""
        T = self.T if T == "inputs" else T
        if image is not None:
            return f"({n}, {', '.join(map(str, image))})"
        return f"({n}, {d})" if T is None else f"({n}, {T}, {d})"

    def _T(self, name) -> dict:
        """xshape's T for an input: none for one vector per sequence (a mask after a flatten)."""
        return {"T": None} if name in self.per_example else {}

    def yshape(self, n) -> str:
        return self.xshape(n, self.d_out, self.out_image, self.out_T)

    def lshape(self, n, T="output") -> str:
        """Integer labels: (n,), or (n, T) for a sequence (the output's T by default)."""
        T = self.out_T if T == "output" else T
        return f"({n},)" if T is None else f"({n}, {T})"

    def flat(self, xs, Y=None):
        """The inputs (and Y, or the list of several losses' targets) as the batch program reads
        them: one position a row, (n·T, d), (n·T, k) or (n·T,) labels; unchanged for vectors.
        Views of contiguous arrays."""
        if self.T is None:
            return xs, Y
        rows = xs[0].shape[0] * self.T
        xs = [a if name in self.per_example else  # (a mask after a flatten: a row a sequence)
              a.reshape(rows) if name in self.tokens else a.reshape(rows, a.shape[-1])
              for a, name in zip(xs, self.inputs)]

        def one(Y, T):  # (an output after a flatten keeps one row per sequence)
            return Y if T is None else Y.reshape(rows, -1) if Y.ndim == 3 else Y.reshape(rows)
        return xs, (None if Y is None else [one(y, T) for y, T in zip(Y, self.out_Ts)]
                    if isinstance(Y, list) else one(Y, self.out_T))

    def examples(self, X, dt):
        """The input arrays, in net.inputs order, converted to dt."""
        names = self.inputs
        if isinstance(X, dict):
            check_keys("X", X, names, "network's inputs")
            arrays, labels = [X[k] for k in names], [f"X[{k!r}]" for k in names]
        elif len(names) > 1:
            each = ", ".join(f"{k!r}: {self.xshape('n', d, self.images.get(k), **self._T(k))} "
                             "array" for k, d in zip(names, self.d_ins))
            raise ValueError(f"X: this network has {len(names)} inputs; give a dict {{{each}}}")
        else:
            arrays, labels = [X], ["X"]
        out = []
        for a, what, d, name in zip(arrays, labels, self.d_ins, names):
            if name in self.tokens:
                a = self.token_array(a, what, self.tokens[name])
                if out and a.shape[0] != out[0].shape[0]:
                    raise ValueError(f"{what} has {a.shape[0]} rows but {labels[0]} has "
                                     f"{out[0].shape[0]}: every input needs one row per example")
                out.append(a)
                continue
            a = _numeric(a, what, dt)
            if name in self.images:
                img = self.images[name]
                if a.shape[1:] != img or a.ndim != 4:
                    raise ValueError(f"{what} has shape {a.shape}; expected "
                                     f"{self.xshape('n', d, img)}: n images of {img[0]} "
                                     f"channel{'s' if img[0] > 1 else ''} of {img[1]}×{img[2]}")
            elif self.T is not None and name not in self.per_example:
                if a.ndim != 3 or a.shape[1:] != (self.T, d):
                    raise ValueError(f"{what} has shape {a.shape}; expected {self.xshape('n', d)}: "
                                     f"n sequences of {self.T} positions of {d} features")
            elif a.ndim != 2 or a.shape[1] != d:
                raise ValueError(f"{what} has shape {a.shape}; expected (n, {d}), one example a row")
            if out and a.shape[0] != out[0].shape[0]:
                raise ValueError(f"{what} has {a.shape[0]} rows but {labels[0]} has "
                                 f"{out[0].shape[0]}: every input needs one row per example")
            out.append(a)
        if out[0].shape[0] == 0:
            raise ValueError(f"{labels[0]} has no examples (shape {out[0].shape})")
        return out

    def token_array(self, A, what, V):
        """Tokens checked and returned as intp: (n,) for one token an example, (n, T) for a
        sequence; integers only, as class labels are (a float array is refused even when its
        values are whole), each 0 ≤ tok < V."""
        A = np.asarray(A)
        want = "(n,)" if self.T is None else f"(n, {self.T})"
        if A.dtype.kind not in "iu":
            raise ValueError(f"{what}: tokens must be integers, got {A.dtype} (an {want} array "
                             f"of tokens below {V})")
        if A.ndim != (1 if self.T is None else 2) or (self.T is not None and A.shape[1] != self.T):
            raise ValueError(f"{what} has shape {A.shape}; expected {want} integer tokens below "
                             f"{V}" + ("" if self.T is None else
                                       f": n sequences of {self.T} tokens"))
        bad = (A < 0) | (A >= V)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{what}[{', '.join(map(str, at))}] = {A[at]} is no token: tokens "
                             f"lie in 0..{V - 1} (V = {V})")
        return A.astype(np.intp, copy=False)

    def finite(self, arrays):
        """Raise naming the first array (parameter, input or Y) that holds nan or inf."""
        what = self.names + (["X"] if len(self.inputs) == 1 else
                             [f"X[{k!r}]" for k in self.inputs]) + self.ynames
        for name, a in zip(what, arrays):
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = "nan" if np.isnan(a).any() else "inf"
                name = f"params[{name!r}]" if name in self.shapes else name
                raise ValueError(f"{name} holds {bad} (at {np.argwhere(~np.isfinite(a))[0].tolist()})")

    @property
    def ynames(self) -> list:
        """How messages name the targets: Y, or Y['cls'] for each output of several losses."""
        return [f"Y[{o!r}]" for o in self.outputs] if self.several else ["Y"]

    def diagnose(self, params, X, Y=None):
        """Called when a result came out nan or inf: a clear error if an argument holds nan or
        inf, else nothing (the arithmetic itself overflowed)."""
        self.check(params, X, Y)

    def target(self, Y, n, dt, k=0):
        """Y for n examples, checked and converted: (n, k), or (n,) labels; for a sequence
        (n, T, k) or (n, T) labels, returned so, checked position by position by ``rows``.
        ``k``: which term of several losses (its output's size, labels and name)."""
        if self.out_Ts[k] is None:
            if self.out_image is not None and not self.several and np.ndim(Y) == 4:  # as the output
                Y = np.asarray(Y)
                if Y.shape != (n, *self.out_image):
                    raise ValueError(f"Y has shape {Y.shape}; expected {self.yshape(n)}")
                Y = Y.reshape(n, -1)
            elif self.out_image is not None and not self.several and np.shape(Y) != (n, self.d_out):
                raise ValueError(f"Y has shape {np.shape(Y)}; expected {self.yshape(n)}, an image "
                                 f"a row as the output (or its {self.d_out} entries, ({n}, "
                                 f"{self.d_out}))")
            return self.rows(Y, n, dt, k)
        Y, T = np.asarray(Y), self.out_Ts[k]
        d_out, labels, what = self.d_outs[k], self.labels_of[k], self.ynames[k]
        if labels and Y.ndim == 2 and Y.shape == (n, T):
            return self.rows(Y.reshape(n * T), n * T, dt, k).reshape(n, T)
        if Y.ndim == 2 and d_out == 1 and Y.shape == (n, T):
            Y = Y[:, :, None]
        if Y.shape != (n, T, d_out):
            extra = f" or {self.lshape(n, T)} integer labels" if labels else ""
            raise ValueError(f"{what} has shape {Y.shape}; expected "
                             f"{self.xshape(n, d_out, T=T)}{extra}")
        return self.rows(Y.reshape(n * T, d_out), n * T, dt, k).reshape(n, T, d_out)

    @staticmethod
    def row_tolerance(dt, d_out) -> float:
        """How far a cross_entropy target row's sum may be from 1 (rounding of d_out entries)."""
        return 1000 * float(np.finfo(dt).eps) * d_out

    def rows(self, Y, n, dt, k=0):
        """Y for n rows of the batch program (examples, or the positions of sequences): (n, k),
        or (n,) labels, checked and converted."""
        Y = np.asarray(Y)
        d_out, labels, what = self.d_outs[k], self.labels_of[k], self.ynames[k]
        if labels and Y.ndim == 1 and Y.shape == (n,):
            if Y.dtype.kind not in "iu":
                raise ValueError(f"{what}: class labels must be integers, got {Y.dtype}")
            if n:
                check_label_range(what, d_out, Y.min(), Y.max())
            return Y
        if Y.ndim == 1 and d_out == 1 and Y.shape == (n,):
            Y = Y[:, None]
        if Y.shape != (n, d_out):
            extra = f" or ({n},) integer labels" if labels else ""
            raise ValueError(f"{what} has shape {Y.shape}; expected ({n}, {d_out}){extra}")
        Y = _numeric(Y, what, dt)
        if labels and n:  # ŷ − y, the fused softmax + cross-entropy gradient, needs Σ_k y_k = 1
            sums = Y.sum(axis=1)
            off = np.abs(sums - 1) > self.row_tolerance(dt, d_out)
            if off.any():
                i = int(np.argmax(off))
                T = self.out_Ts[k]
                where = f"row {i}" if T is None else f"{what}[{i // T}, {i % T}]"
                raise ValueError(f"{what}: {where} sums to {sums[i]:.6g}; cross_entropy targets "
                                 "are rows that sum to 1 (one-hot or distributions) or "
                                 f"{self.lshape('n', T)} integer labels")
            # a row [0, 1.5, -0.5] sums to 1 but is no distribution: its loss (1.68 in a
            # user's trial) means nothing
            neg = Y < 0
            if neg.any():
                i, j = (int(v) for v in np.argwhere(neg)[0])
                T = self.out_Ts[k]
                where = f"row {i}" if T is None else f"{what}[{i // T}, {i % T}]"
                raise ValueError(f"{what}: {where} has the negative entry {Y[i, j]:.6g} (column "
                                 f"{j}); cross_entropy targets are rows of non-negative entries "
                                 "that sum to 1 (one-hot or distributions) or "
                                 f"{self.lshape('n', T)} integer labels")
        return Y


def check_keys(what: str, given, names, whose: str) -> None:
    """A dict argument's keys exactly ``names``, else one line: "X: unexpected 'u'; missing 'x'
    (the network's inputs are 'x', 'y')" (the kernels of every backend, inputs and outputs)."""
    extra = [repr(k) for k in given if k not in names]
    missing = [repr(k) for k in names if k not in given]
    if extra or missing:
        raise ValueError(f"{what}: {'unexpected ' + ', '.join(extra) if extra else ''}"
                         f"{'; ' if extra and missing else ''}"
                         f"{'missing ' + ', '.join(missing) if missing else ''} (the "
                         f"{whose} are {', '.join(map(repr, names))})")


def is_dask(a) -> bool:
    """Whether ``a`` is a dask array (without importing dask when it is not one)."""
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "to_delayed")


def out_of_core(what) -> str:
    """The words for a dask array given to a kernel, which takes arrays in memory."""
    return (f"{what} is a dask array; a kernel takes arrays in memory: for data beyond memory use "
            "symgrad.run.chunked.gradient(net, params, X, Y) or sg.train(net, X, Y), chunk by "
            "chunk")


def check_label_range(what, d_out, lo, hi) -> None:
    """Class labels, given their least and greatest, lie in 0..d_out − 1 (every backend's words)."""
    if lo < 0 or hi >= d_out:
        raise ValueError(f"{what}: labels must lie in 0..{d_out - 1}, got {lo if lo < 0 else hi}")


def _numeric(A, what, dt):
    A = np.asarray(A)
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got {A.dtype}")
    return A if A.dtype == dt else A.astype(dt)


def init_params(net, seed: int = 0, dtype="float64") -> dict:
    """Random weights (He normal, √(2/fan_in), before units whose activation asks for it, as relu
    and leaky_relu do; Glorot normal otherwise) and zero biases, shaped as :func:`param_shapes`
    says, from ``numpy.random.default_rng(seed)``."""
    dt = np.dtype(dtype)
    if dt not in FLOATS:
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    rng, out = np.random.default_rng(seed), {}
    for p, shape in param_shapes(net).items():
        if len(shape) == 1:
            out[p] = np.zeros(shape, dt)
            continue
        fan_out, fan_in = net.shapes[p]  # a conv weight's fan-in is C·kh·kw, as torch counts
        acts = [net.nodes[c].act for n in net.nodes.values() if n.params and n.params[0] == p
                for c in net.consumers(n.name) if net.nodes[c].op == "act"]
        he = any(a.init == "he" for a in acts)  # the activation's registered init hint
        std = math.sqrt(2 / fan_in) if he else math.sqrt(2 / (fan_in + fan_out))
        out[p] = (rng.standard_normal(shape) * std).astype(dt)
    for node in net.nodes.values():  # an op's own starting values (a gain of ones)
        rule = OPS[node.op].init if node.op in OPS else None
        for p, how in (rule(net, node) if rule else {}).items():
            out[p] = (np.ones(out[p].shape, dt) if how == "ones" else
                      rng.standard_normal(out[p].shape).astype(dt) if how == "normal" else
                      np.zeros(out[p].shape, dt))  # "normal": N(0, 1), torch's nn.Embedding
    return out



