"""The matrix language: text such as ``x'*A*x`` or ``norm2(X*w - y)^2`` → a SymPy matrix expression.

Where it sits: core, beside :mod:`symgrad.core.parse`, whose tokenizer, limits and error type it
extends: the text never reaches eval or SymPy's parsers. Names are declared by kind (scalars by
default, ``vectors``, ``matrices``, ``symmetric`` matrices), with sizes that are numbers or symbols.

Grammar, loosest first::

    expr    := term (('+' | '-') term)*
    term    := signed (('*' | '/' | '.*' | './') signed)*
    signed  := ('+' | '-') signed | power
    power   := postfix (('^' | '**' | '.^') signed)?
    postfix := primary "'"*
    primary := NUMBER | NAME | FUNCTION '(' expr (',' expr)* ')' | '(' expr ')'

``*`` is the matrix product (a scalar factor scales), ``.*`` ``./`` ``.^`` act entry by entry, ``'``
transposes; a scalar added to a matrix is added to every entry. A 1×1 product (x'*y) is a scalar.

Two passes, so a size need not be given twice: the parser builds a small tree, sizes are inferred
over it by unification (in ``x'*A*x`` A is n×n for the n of x), then the SymPy expression is built
with each size a number or a symbol. A shape error is one line naming the operator with its operands'
text, both shapes (a vector n×1) and the operator's column, counting from 1 (``A*x: 3×3 times 2×1
(the * at column 2)``; a compound operand in parentheses, ``(x'*A)*x``). Division by zero, the log
of 0 and any other constant that is not finite are one line too, naming where. ``norm2`` is kept
as written (``Norm2``, ‖v‖₂) in ``MatrixProblem.written``, for the first step and the title.
"""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import sympy as sp

from symgrad.core.matexpr import Elementwise, LogSumExp, Norm2, Scalar, Softmax, Symmetric, lam
from symgrad.core.parse import ParseError, _Parser, parse_symbols
from symgrad.core.primitives import FUNCTIONS, PRIMITIVES

__all__ = ["KINDS", "MATRIX_FUNCTIONS", "ELEMENTWISE", "MatrixProblem", "parse_matrix",
           "declare", "entrywise", "parse_sizes"]

KINDS = ("scalar", "vector", "matrix", "symmetric")

# Entry by entry on a matrix, the scalar function on a scalar (a rule for each lives in
# symgrad.derive.mcalc, checked complete there).
ELEMENTWISE = ("exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "softplus")
# name → (min, max) arguments
MATRIX_FUNCTIONS = {"tr": (1, 1), "det": (1, 1), "logdet": (1, 1), "inv": (1, 1), "diag": (1, 1),
                    "sum": (1, 1), "norm1": (1, 1), "norm2": (1, 1), "eye": (0, 1),
                    "ones": (0, 1), "vector": (1, 1), "logsumexp": (1, 1), "softmax": (1, 1),
                    **{f: (1, 1) for f in ELEMENTWISE}}
_SIZE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_LETTERS = "n m k p q r s t u v".split()


class _Node(NamedTuple):
    op: str         # "num", "name", "call", "neg", "'", or a binary operator
    args: tuple     # child nodes (a call's arguments)
    col: int
    text: str = ""  # the name, the number's digits, the function
    value: object = None


class _MatrixParser(_Parser):
    """The scalar parser's tokens plus ``'`` ``.*`` ``./`` ``.^``; builds a :class:`_Node` tree."""

    # no trailing point: "2.*x" is 2 .* x, as in MATLAB
    NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

    def extra_op(self, text, i):
        if text.startswith((".*", "./", ".^"), i):
            return text[i:i + 2]
        return "'" if text.startswith("'", i) else None

    def top(self) -> _Node:
        if len(self.toks) == 1:
            self.fail("empty expression")
        node = self.expr()
        if (tok := self.peek()).kind != "end":
            if tok.kind == ",":
                self.fail(f"unexpected ',' at column {tok.col} (one expression only)", tok.col)
            self.unexpected(tok)
        return node

    def expr(self, min_prec: int = 1) -> _Node:
        if tok := self.peek("+", "-"):
            self.take()
            left = self.nested(tok, self.expr, 3)
            left = _Node("neg", (left,), tok.col) if tok.text == "-" else left
        else:
            left = self.power()
        for prec, ops in ((2, ("*", "/", ".*", "./")), (1, ("+", "-"))):
            while min_prec <= prec and (tok := self.peek(*ops)):
                self.take()
                left = _Node(tok.text, (left, self.expr(prec + 1)), tok.col)
        return left

    def power(self) -> _Node:
        base = self.primary()
        while tok := self.peek("'"):
            self.take()
            base = _Node("'", (base,), tok.col)
        if (tok := self.peek()).kind in ("num", "name", "("):
            self.fail(f"missing operator before {tok.text!r} at column {tok.col} "
                      "(implicit multiplication is not supported: use '*')", tok.col)
        if not (tok := self.peek("**", "^", ".^")):
            return base
        self.take()
        op = "^" if tok.text == "**" else tok.text
        return _Node(op, (base, self.nested(tok, self.expr, 3)), tok.col)

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "num":
            return _Node("num", (), tok.col, tok.text, self.number(tok))
        if tok.kind == "name":
            if self.peek().kind == "(":
                return self.nested(tok, self.call, tok)
            if tok.text in MATRIX_FUNCTIONS and MATRIX_FUNCTIONS[tok.text][0] > 0:
                self.fail(f"{tok.text!r} is a function: call it as {tok.text}(...) "
                          f"(column {tok.col})", tok.col)
            if tok.text in ("eye", "ones"):
                return _Node("call", (), tok.col, tok.text)
            return _Node("name", (), tok.col, tok.text)
        if tok.kind != "(":
            self.unexpected(tok)
        if self.peek().kind == ")":
            self.fail(f"empty parentheses at column {tok.col}", tok.col)
        node = self.nested(tok, self.expr)
        if (close := self.take()).kind != ")":
            self.fail(f"unexpected ',' at column {close.col} (tuples are not allowed)", close.col)
        return node

    def call(self, tok: _Tok) -> _Node:
        name = tok.text
        if name not in MATRIX_FUNCTIONS:
            self.fail(f"unknown function {name!r} at column {tok.col} "
                      f"(allowed: {', '.join(sorted(MATRIX_FUNCTIONS))})", tok.col)
        self.take()
        args = [] if self.peek().kind == ")" else [self.expr()]
        while self.peek().kind == ",":
            self.take()
            args.append(self.expr())
        self.take()
        lo, hi = MATRIX_FUNCTIONS[name]
        if not lo <= len(args) <= hi:
            want = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
            self.fail(f"{name!r} takes {want} argument{'s' * (hi != 1)}, got {len(args)} "
                      f"(column {tok.col})", tok.col)
        return _Node("call", tuple(args), tok.col, name)


_Tok = type(_Parser("x").toks[0])


# -- declarations ---------------------------------------------------------------------------------
def declare(vectors="", matrices="", symmetric="", scalars="") -> dict[str, str]:
    """Names by kind, each given as text ("w y" or "w, y") or a list or tuple of names
    (["w", "y"]): name → kind."""
    kinds: dict[str, str] = {}
    for kind, text in (("scalar", scalars), ("vector", vectors), ("matrix", matrices),
                       ("symmetric", symmetric)):
        if isinstance(text, (list, tuple)):
            if not all(isinstance(t, str) for t in text):
                bad = next(t for t in text if not isinstance(t, str))
                raise ValueError(f"{kind} names must be text, got {type(bad).__name__} "
                                 f"{bad!r:.40} in the list")
            text = " ".join(t.strip() for t in text) if text else None
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        if not isinstance(text, str):
            raise ValueError(f"{kind} names must be given as text such as \"w y\" or a list "
                             f"such as [\"w\", \"y\"], got {type(text).__name__}")
        for s in parse_symbols(text):
            if s.name in MATRIX_FUNCTIONS:
                raise ValueError(f"{s.name!r} is a function of the matrix language, not a name")
            if s.name in kinds:
                raise ValueError(f"{s.name!r} is declared twice: as a {kinds[s.name]} and as "
                                 f"a {kind}")
            kinds[s.name] = kind
    return kinds


# -- sizes: union-find over the dimensions --------------------------------------------------------
class _Dims:
    """Dimensions as union-find classes; each class may hold a number and a name. Class 0 is 1."""

    def __init__(self):
        self.parent, self.value, self.name = [0], [1], [None]

    def new(self, value=None, name=None) -> int:
        self.parent.append(len(self.parent))
        self.value.append(value)
        self.name.append(name)
        return len(self.parent) - 1

    def find(self, d: int) -> int:
        while self.parent[d] != d:
            self.parent[d] = self.parent[self.parent[d]]
            d = self.parent[d]
        return d

    def union(self, a: int, b: int) -> bool:
        """Make a and b one size; False if they cannot be (two numbers, or a symbol and 1: a
        vector or matrix size is never taken to be 1)."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return True
        va, vb = self.value[a], self.value[b]
        if (va is not None and vb is not None and va != vb) or (0 in (a, b) and None in (va, vb)):
            return False
        na, nb = self.name[a], self.name[b]
        if na is not None and nb is not None and na != nb and va is None and vb is None:
            return False  # two different size names the user gave: n and m stay apart
        keep, drop = (a, b) if a < b else (b, a)
        self.parent[drop] = keep
        self.value[keep] = va if va is not None else vb
        self.name[keep] = na if na is not None else nb
        return True


@dataclass
class MatrixProblem:
    """A parsed matrix-language expression: the SymPy expression and what its names stand for."""

    text: str
    expr: sp.Basic                 # a scalar Expr, or a MatrixExpr
    symbols: dict                  # user name → its Symbol / MatrixSymbol (only names in the text)
    kinds: dict                    # user name → kind
    size_symbols: dict             # size name → its Symbol (sizes that stayed symbolic)
    notes: list = field(default_factory=list)  # rewrites made while building, for the steps
    written: sp.Basic | None = None  # the expression as written, when a rewrite changed it

    @property
    def shape(self):
        return getattr(self.expr, "shape", (1, 1))

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.expr, sp.MatrixExpr)

    def kind_of(self, e) -> str:
        """scalar, vector, row or matrix: by shape."""
        if not isinstance(e, sp.MatrixExpr):
            return "scalar"
        r, c = e.shape
        return "vector" if c == 1 else "row" if r == 1 else "matrix"


def parse_matrix(text: str, vectors="", matrices="", symmetric="", scalars="",
                 sizes=None) -> MatrixProblem:
    """Parse matrix-language ``text`` with the names declared by kind; ``sizes`` maps a name to
    its size: a vector's one number or size name, a matrix's pair (``{"X": (100, "d")}``)."""
    kinds = declare(vectors, matrices, symmetric, scalars)
    tree = _MatrixParser(text).top() if isinstance(text, str) else _MatrixParser(text)
    return _Builder(text, kinds, sizes or {}).build(tree)


class _Builder:
    def __init__(self, text, kinds, sizes):
        self.text, self.kinds, self.dims = text, kinds, _Dims()
        self.shapes: dict[str, tuple | None] = {}
        self.size_names: dict[str, int] = {}
        self.used: dict[str, sp.Basic] = {}
        self.notes: list[str] = []
        self.placeholders: list[tuple[int, _Node]] = []  # eye/ones whose size comes from use
        self.at: dict[int, tuple | None] = {}  # id(node) → its shape, from pass 1
        self.literal = False  # True: build the text as written, without the stable rewrites
        if not isinstance(sizes, dict):
            raise ValueError(f"sizes must be a dict of name → size, got {type(sizes).__name__}")
        for name, kind in kinds.items():
            self.shapes[name] = self._declared(name, kind, sizes.get(name))
        for name in sizes:
            if name not in kinds:
                raise ValueError(f"sizes: {name!r} is not a declared vector or matrix")

    # -- declared shapes ---------------------------------------------------------------------------
    def _size(self, v, name):
        if isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1:
            return self.dims.new(value=int(v))
        if isinstance(v, str) and _SIZE_NAME.match(v):
            if v in self.kinds:
                raise ValueError(f"sizes of {name!r}: {v!r} names a variable, not a size")
            if v not in self.size_names:
                self.size_names[v] = self.dims.new(name=v)
            return self.size_names[v]
        raise ValueError(f"sizes of {name!r}: a size is a positive integer or a name such as "
                         f"'n', got {v!r}")

    def _declared(self, name, kind, size):
        if kind == "scalar":
            if size is not None:
                raise ValueError(f"sizes: {name!r} is a scalar and has no size")
            return None
        if kind == "vector":
            size = size[0] if isinstance(size, tuple) and len(size) == 1 else size
            if isinstance(size, tuple):
                raise ValueError(f"sizes of {name!r}: a vector has one size, got {size!r}")
            return (self.dims.new() if size is None else self._size(size, name), 0)
        if size is None:
            r = self.dims.new()
            return (r, r if kind == "symmetric" else self.dims.new())
        if not (isinstance(size, tuple) and len(size) == 2):
            raise ValueError(f"sizes of {name!r}: a matrix has a pair of sizes, got {size!r}")
        r, c = (self._size(v, name) for v in size)
        if kind == "symmetric" and not self.dims.union(r, c):
            raise ValueError(f"sizes of {name!r}: a symmetric matrix is square, got {size!r}")
        return (r, c)

    # -- errors ------------------------------------------------------------------------------------
    def fail(self, message, col):
        raise ParseError(message, col, self.text)

    def dim_text(self, d):
        d = self.dims.find(d)
        v, n = self.dims.value[d], self.dims.name[d]
        return str(v) if v is not None else n if n is not None else self._letter(d)

    def _letter(self, d):
        taken = set(self.kinds) | {self.dims.name[self.dims.find(x)] for x in
                                   range(len(self.dims.parent))}
        for letter in _LETTERS + [f"n{i}" for i in range(1, 1000)]:
            if letter not in taken:
                self.dims.name[d] = letter
                return letter
        raise AssertionError("out of size names")

    def shape_text(self, s):
        if s is None:
            return "a scalar"
        r, c = s
        return f"{self.dim_text(r)}×{self.dim_text(c)}"  # a vector is n×1, a row 1×n

    def unify(self, a, b, node, what, sa, sb):
        if not self.dims.union(a, b):
            self.fail(f"{what}: {self.shape_text(sa)} {self._joint(node.op)} "
                      f"{self.shape_text(sb)} (the {node.op} at column {node.col})", node.col)

    @staticmethod
    def _joint(op):
        return {"*": "times", "+": "plus", "-": "minus", ".*": "entrywise times",
                "./": "entrywise over"}.get(op, "and")

    def _is_one(self, d):
        return self.dims.find(d) == 0

    def _shape(self, r, c):
        return None if self._is_one(r) and self._is_one(c) else (r, c)

    # -- pass 1: shapes ----------------------------------------------------------------------------
    def infer(self, node):
        """The shape of ``node`` (None for a scalar), unifying sizes as the operators need; kept
        by node for pass 2."""
        self.at[id(node)] = shape = self._infer(node)
        return shape

    def _infer(self, node):
        op, col = node.op, node.col
        if op == "num":
            return None
        if op == "name":
            if node.text not in self.shapes:
                self.shapes[node.text] = None  # undeclared names are scalars
                self.kinds[node.text] = "scalar"
            return self.shapes[node.text]
        if op == "neg":
            return self.infer(node.args[0])
        if op == "'":
            s = self.infer(node.args[0])
            return None if s is None else (s[1], s[0])
        if op == "call":
            return self.infer_call(node)
        a, b = (self.infer(x) for x in node.args)
        what = self.operands(node)
        if op == "*":
            if a is None or b is None:
                return a if b is None else b
            self.unify(a[1], b[0], node, what, a, b)
            return self._shape(a[0], b[1])
        if op in ("+", "-", ".*", "./"):
            if a is None or b is None:
                return a if b is None else b
            self.unify(a[0], b[0], node, what, a, b)
            self.unify(a[1], b[1], node, what, a, b)
            return a
        if op == "/":
            if b is not None:
                self.fail(f"{what}: cannot divide by {self.shape_text(b)} (divide by a scalar, "
                          f"or use ./ entry by entry) (column {col})", col)
            return a
        if op == ".^":
            if b is not None:
                self.fail(f"{what}: the exponent is {self.shape_text(b)}; it must be a number "
                          f"(column {col})", col)
            return a
        if op == "^":
            if b is not None:
                self.fail(f"{what}: the exponent must be a scalar (column {col})", col)
            if a is not None:
                if not (a[0] != 0 and self.dims.union(a[0], a[1])) or self._is_one(a[1]):
                    self.fail(f"{what}: a power of {self.shape_text(a)} (a matrix power needs a "
                              f"square matrix; use .^ entry by entry) (column {col})", col)
            return a
        raise AssertionError(op)

    def infer_call(self, node):
        name, args, col = node.text, node.args, node.col
        if name in ("eye", "ones"):
            if args:
                d = self.size_arg(args[0], name)
            else:
                d = self.dims.new()
                self.placeholders.append((d, node))
            return (d, d) if name == "eye" else (d, 0)
        s = self.infer(args[0])
        what = self.snippet(node)
        if name == "vector":
            if args[0].op != "num":
                self.fail(f"{what}: vector(c) takes a number, the value of every entry "
                          f"(column {col})", col)
            d = self.dims.new()
            self.placeholders.append((d, node))
            return (d, 0)
        if name in ELEMENTWISE:
            return s
        if name in ("sum", "norm1", "norm2"):
            return None
        if name in ("logsumexp", "softmax"):
            if s is None:
                self.fail(f"{what}: {name} takes a vector or a matrix, got a scalar "
                          f"(column {col})", col)
            if not self._is_one(s[1]):  # a matrix: one example per row, as X*W's logits
                return (s[0], 0) if name == "logsumexp" else s
            return None if name == "logsumexp" else s
        if name == "diag":
            if s is not None and self._is_one(s[1]):
                return (s[0], s[0])
        if s is None and name in ("tr", "det", "logdet", "inv"):
            return None  # of a scalar (a 1×1 such as x'*x): tr(s) = det(s) = s, inv(s) = 1/s
        if s is None or not self.dims.union(s[0], s[1]) or self._is_one(s[1]):
            self.fail(f"{what}: {name} needs a square matrix, got {self.shape_text(s)} "
                      f"(column {col})", col)
        return {"tr": None, "det": None, "logdet": None, "inv": s, "diag": (s[0], 0)}[name]

    def size_arg(self, arg, name):
        if arg.op == "num" and arg.value.is_Integer and arg.value >= 1:
            return self.dims.new(value=int(arg.value))
        if arg.op == "name" and arg.text not in self.kinds:
            if arg.text not in self.size_names:
                self.size_names[arg.text] = self.dims.new(name=arg.text)
            return self.size_names[arg.text]
        self.fail(f"{name}(n): n is a size, a positive integer or a size name (column "
                  f"{arg.col})", arg.col)

    def operands(self, node) -> str:
        """A binary operator with its operands' text, a compound operand in parentheses, so the
        message says which operator: ``(x'*A)*x`` for the second * of ``x'*A*x``."""
        def side(a):
            t = self.snippet(a)
            bare = a.op in ("num", "name", "call", "'") or (t.startswith("(") and t.endswith(")"))
            return t if bare else f"({t})"
        left, right = node.args
        return f"{side(left)}{node.op}{side(right)}"

    def snippet(self, node) -> str:
        """The text of ``node`` (an operator's whole operands), for error messages."""
        lo, hi = self.span(node)
        return self.text[lo - 1:hi - 1].strip()

    def span(self, node):
        if node.op in ("num", "name"):
            return node.col, node.col + len(node.text)
        if node.op == "call":
            end = node.col + len(node.text)
            depth, i = 0, end - 1
            while i < len(self.text):  # to the matching ')'
                depth += {"(": 1, ")": -1}.get(self.text[i], 0)
                i += 1
                if depth == 0 and self.text[i - 1] == ")":
                    break
            return node.col, (i + 1 if node.args or self.text[end - 1:end] == "(" else end)
        width = 1 if node.op == "neg" else len(node.op)
        spans = [self.span(a) for a in node.args] + [(node.col, node.col + width)]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        while lo > 1 and self.text[lo - 2] == "(" and self.text[hi - 1:hi] == ")":
            lo, hi = lo - 1, hi + 1  # "(X*w - y)'" includes its parentheses
        return lo, hi

    # -- pass 2: SymPy -----------------------------------------------------------------------------
    def build(self, tree) -> MatrixProblem:
        self.infer(tree)
        for d, node in self.placeholders:
            root = self.dims.find(d)
            fixed = self.dims.value[root] is not None or self.dims.name[root] is not None or any(
                self.dims.find(x) == root for s in self.shapes.values() if s for x in s)
            if not fixed:
                self.fail(f"cannot tell the size of {node.text} at column {node.col}: write "
                          f"{node.text}(n)" if node.text != "vector" else
                          f"cannot tell the length of vector(...) at column {node.col}", node.col)
        self.sizes: dict[int, sp.Expr] = {}
        self.size_symbols: dict[str, sp.Symbol] = {}
        for name in self.order(tree):  # size letters in order of first appearance
            for d in self.shapes.get(name) or ():
                self.size_of(d)
        expr = self.go(tree)
        written = None
        if self.notes or self.has_norm(tree):  # as the user wrote it: the first step, the title
            notes, self.literal = self.notes, True
            written, self.notes, self.literal = self.go(tree), notes, False
        symbols = {n: self.used[n] for n in self.order(tree) if n in self.used}
        kinds = {n: self.kinds[n] for n in symbols}
        return MatrixProblem(self.text, expr, symbols, kinds, self.size_symbols, self.notes,
                             written)

    def has_norm(self, node) -> bool:
        """norm2 of a vector or matrix: written ‖v‖₂ in the first step and the title."""
        return (node.op == "call" and node.text == "norm2" and self.at.get(id(node.args[0]))
                is not None) or any(self.has_norm(a) for a in node.args)

    def order(self, node, out=None):
        out = [] if out is None else out
        if node.op == "name" and node.text not in out:
            out.append(node.text)
        for a in node.args:
            self.order(a, out)
        return out

    def size_of(self, d):
        root = self.dims.find(d)
        if root not in self.sizes:
            v = self.dims.value[root]
            if v is not None:
                self.sizes[root] = sp.Integer(v)
            else:
                name = self.dim_text(root)
                self.sizes[root] = self.size_symbols[name] = sp.Symbol(name, integer=True,
                                                                       positive=True)
        return self.sizes[root]

    def symbol(self, name):
        if name not in self.used:
            kind, s = self.kinds[name], self.shapes[name]
            if kind == "scalar":
                self.used[name] = sp.Symbol(name, real=True)
            else:
                cls = Symmetric if kind == "symmetric" else sp.MatrixSymbol
                self.used[name] = cls(name, self.size_of(s[0]), self.size_of(s[1]))
        return self.used[name]

    def go(self, node):
        op = node.op
        if op == "num":
            return node.value
        if op == "name":
            return self.symbol(node.text)
        if op == "neg":
            return -self.go(node.args[0])
        if op == "'":
            v = self.go(node.args[0])
            return v.T if isinstance(v, sp.MatrixExpr) else v
        if op == "call":
            return self.call(node)
        a, b = (self.go(x) for x in node.args)
        ma, mb = isinstance(a, sp.MatrixExpr), isinstance(b, sp.MatrixExpr)
        if op in ("+", "-"):
            b = -b if op == "-" else b
            if ma and mb:
                return sp.MatAdd(a, b).doit()
            if ma or mb:  # a scalar added to every entry
                m = a if ma else b
                return sp.MatAdd(m, (b if ma else a) * sp.OneMatrix(*m.shape)).doit()
            return a + b
        if op == "*" or (op == ".*" and not (ma and mb)):
            if ma and mb:
                return _scalar(sp.MatMul(a, b).doit())
            return sp.MatMul(a, b).doit() if ma or mb else a * b
        if op == ".*":
            return sp.HadamardProduct(a, b).doit()
        if op in ("/", "./") and not mb and b.is_zero:
            self.fail(f"{self.operands(node)}: division by zero (the {op} at column "
                      f"{node.col})", node.col)
        if op == "/":
            return self.finite(node, sp.MatMul(1 / b, a).doit() if ma else a / b)
        if op == "./":
            if not mb:
                return sp.MatMul(1 / b, a).doit() if ma else a / b
            inv = sp.HadamardPower(b, -1)
            return sp.HadamardProduct(a, inv).doit() if ma else sp.MatMul(a, inv).doit()
        if op == ".^":
            if b.free_symbols:
                self.fail(f"{self.snippet(node)}: the exponent must be a number (column "
                          f"{node.col})", node.col)
            return sp.HadamardPower(a, b) if ma else self.finite(node, a**b)
        if op == "^":
            if not ma:
                return self.finite(node, a**b)
            if not (b.is_Integer and b >= 1):
                self.fail(f"{self.snippet(node)}: a matrix power takes a positive integer "
                          f"exponent (column {node.col})", node.col)
            return sp.MatPow(a, b)
        raise AssertionError(op)

    def call(self, node):
        name = node.text
        if name in ("eye", "ones"):
            d = self.shape_dims(node)
            return sp.Identity(d[0]) if name == "eye" else sp.OneMatrix(d[0], 1)
        if name == "vector":
            d = self.shape_dims(node)
            return sp.MatMul(node.args[0].value, sp.OneMatrix(d[0], 1)).doit()
        arg = node.args[0]
        if self.literal:
            pass
        elif name == "log" and self.is_one_plus_exp(arg):
            inner = next(a for a in arg.args if a.op == "call").args[0]
            self.notes.append("log(1 + exp(u)) is softplus(u), computed stably as "
                              "logaddexp(0, u); its derivative is σ(u)")
            return self.elementwise("softplus", self.go(inner))
        elif name == "log" and arg.op == "call" and arg.text in ("sigmoid", "softmax"):
            return self.log_of(arg)
        x = self.go(arg)
        if name in ELEMENTWISE:
            return self.finite(node, self.elementwise(name, x), x)
        m = isinstance(x, sp.MatrixExpr)
        if name == "sum":
            if not m:
                return x
            r, c = x.shape
            return _scalar(sp.MatMul(sp.OneMatrix(1, r), x, sp.OneMatrix(c, 1)).doit())
        if name == "norm1":
            return self.call(_Node("call", (_Node("call", (arg,), node.col, "abs"),), node.col,
                                   "sum")) if m else sp.Abs(x)
        if name == "norm2":
            if not m:
                return sp.Abs(x)
            if self.literal:
                return Norm2(x)
            inner = _scalar(sp.MatMul(x.T, x).doit()) if x.shape[1] == 1 else sp.Trace(x.T * x)
            return sp.sqrt(inner)
        if name in ("logsumexp", "softmax"):
            axis = 1 if self.rowwise(arg) else 0
            if name == "softmax":
                return Softmax(x, axis)
            return LogSumExp(x, 1) if axis else Scalar(LogSumExp(x))
        if name == "diag":
            return sp.DiagMatrix(x) if x.shape[1] == 1 else sp.DiagonalOf(x)
        if not m and name in ("tr", "det", "logdet", "inv"):  # a 1×1 is a scalar
            return {"tr": x, "det": x, "logdet": sp.log(x), "inv": 1 / x}[name]
        if name == "tr":
            return sp.Trace(x)
        if name == "det":
            return sp.Determinant(x)
        if name == "logdet":
            return sp.log(sp.Determinant(x))
        if name == "inv":
            return sp.Inverse(x)
        raise AssertionError(name)

    def finite(self, node, value, arg=None):
        """``value``, unless it is a scalar that is not finite (log(0), 0^-1) or a complex
        constant (sqrt(-1), log(-1)): one line naming where, as division by zero is. A complex
        constant once got as far as the check, which found no real point ("could not find a
        point where … are defined")."""
        if isinstance(value, sp.Basic) and not isinstance(value, sp.MatrixExpr) and \
                value.is_number and value.is_extended_real is False and \
                not value.has(sp.zoo, sp.nan):
            self.fail(f"{self.snippet(node)} is the complex number {sp.sstr(value)} (column "
                      f"{node.col}): the matrix language is real, a complex or imaginary "
                      "constant is not supported", node.col)
        if isinstance(value, sp.Basic) and not isinstance(value, sp.MatrixExpr) and \
                value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            what = self.snippet(node)
            if node.op == "call" and node.text == "log" and arg == 0:
                why = "the log of 0 is −∞"
            elif node.op == "^":
                why = "a power of 0 with a negative exponent: division by zero"
            else:
                why = "not a finite number"
            self.fail(f"{what}: {why} (column {node.col})", node.col)
        return value

    def log_of(self, arg):
        """log σ(u) = −softplus(−u) and log softmax(z) = z − logsumexp(z) 𝟏: the forms that
        stay finite (log σ(−1000) was −inf, log softmax at logits ±1000 nan)."""
        u = self.go(arg.args[0])
        if arg.text == "sigmoid":
            self.notes.append("log σ(u) = −softplus(−u), finite for every u")
            return -self.elementwise("softplus", -u)
        if self.rowwise(arg.args[0]):  # row by row: Z − logsumexp(Z) 𝟏ᵀ
            self.notes.append("log softmax(Z) = Z − logsumexp(Z) 𝟏ᵀ row by row, finite for "
                              "every Z")
            return sp.MatAdd(u, -sp.MatMul(LogSumExp(u, 1), sp.OneMatrix(1, u.shape[1]))).doit()
        self.notes.append("log softmax(z) = z − logsumexp(z) 𝟏, finite for every z")
        return sp.MatAdd(u, -sp.MatMul(Scalar(LogSumExp(u)), sp.OneMatrix(*u.shape))).doit()

    def rowwise(self, node):
        """softmax and logsumexp of a matrix work row by row (one example per row, the logits
        X*W of a batch); of a vector, over the whole vector."""
        s = self.at[id(node)]
        return s is not None and not self._is_one(s[1])

    def shape_dims(self, node):
        return (self.size_of(self.at[id(node)][0]),)

    @staticmethod
    def is_one_plus_exp(node):
        return (node.op == "+" and {a.op for a in node.args} == {"num", "call"}
                and any(a.op == "num" and a.value == 1 for a in node.args)
                and any(a.op == "call" and a.text == "exp" for a in node.args))

    def elementwise(self, name, x):
        fn = FUNCTIONS[name][0]
        if not isinstance(x, sp.MatrixExpr):
            return fn(x)
        return entrywise(name, x)


def entrywise(name, X):
    """``name`` applied entry by entry to X, printed by the primitive's registered LaTeX (σ)."""
    spec = PRIMITIVES.get(name)
    return Elementwise(lam(FUNCTIONS[name][0] if name in FUNCTIONS else spec.cls), X, label=name,
                       latex=spec.latex if spec else "")


def parse_sizes(items, where="--size") -> dict:
    """["X=100x5", "w=5", "X=n,m"] → {"X": (100, 5), "w": 5, …}: numbers or size names."""
    out = {}
    for item in items:
        name, eq, spec = item.partition("=")
        parts = [p.strip() for p in re.split(r"[x×,]", spec)] if eq else []
        if not name.strip() or not parts or not all(parts) or len(parts) > 2:
            raise ValueError(f"{where}: expected NAME=SIZE or NAME=ROWSxCOLS, got {item!r}")
        vals = tuple(int(p) if p.isdigit() else p for p in parts)
        out[name.strip()] = vals[0] if len(vals) == 1 else vals
    return out


def _scalar(e):
    """A 1×1 product is a scalar in the matrix language."""
    return Scalar(e) if isinstance(e, sp.MatrixExpr) and e.shape == (1, 1) else e
