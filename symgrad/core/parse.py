"""Turn user text into a SymPy expression.

Where it sits: the entry of the pipeline: user text -> SymPy expression; everything that reads user
text goes through here. The text never reaches Python's eval or SymPy's string parsers (which end
in eval): a tokenizer and a precedence-climbing parser build the expression, so text can only name
real symbols, exact numbers, and the whitelists of :mod:`symgrad.functions`.

Grammar, loosest first (``^`` and ``**`` both mean power)::

    vector  := expr (',' expr)*                  several components give a column Matrix
    expr    := term (('+' | '-') term)*
    term    := signed (('*' | '/') signed)*
    signed  := ('+' | '-') signed | power        -x**2 = -(x**2)
    power   := primary (('**' | '^') signed)?    right-associative: 2^3^2 = 2^9; 2**-x allowed
    primary := NUMBER | NAME | FUNCTION '(' expr (',' expr)* ')' | '(' expr ')'

Errors are :class:`ParseError` (a ValueError): a one-line message, and ``column``, the 1-based
position of the offending character in the whole text.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import sympy as sp

from symgrad.core.primitives import CONSTANTS, FUNCTIONS

__all__ = ["ParseError", "parse", "parse_symbols", "MAX_LENGTH", "MAX_DEPTH", "MAX_TOKENS",
           "PRINT_DIGITS", "digits_of"]

MAX_LENGTH = 10_000  # characters, checked before any work so a huge string costs nothing
MAX_DEPTH = 100      # nesting of parentheses, calls, signs and powers (Python's stack is ~1000)
MAX_TOKENS = 5_000   # SymPy's work grows faster than linearly with the size of the expression
MAX_DIGITS = 1_000   # per number literal: int() refuses strings of over 4300 digits anyway
MAX_BITS = 100_000   # for all exact numbers together: 9**9**9 would otherwise run for hours
MAX_ROOT_BITS = 3_400  # SymPy factors a number to take its root: 0.2 s at this size, 7 s at 10_000
# Python prints an int of at most 4300 digits (sys.get_int_max_str_digits); a number past that
# (1e5000*x) parsed, then every printer failed with Python's own advice to raise the limit.
PRINT_DIGITS = 4_300
MAX_MINMAX_ARGS = 32  # Max/Min compare every pair of symbolic arguments: 40 already take ~1 s

# Names that can only be an attempt at running code, never a variable in a formula.
RESERVED = frozenset("eval exec compile open input breakpoint import getattr setattr delattr "
                     "globals locals vars exit quit".split())

# ASCII spelled out: \d and str.isdigit also accept the digits of other scripts.
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHY = {  # a hint for each character someone might reasonably try
    "{": "braces are not allowed", "}": "braces are not allowed", "#": "comments are not allowed",
    ":": "lambdas, slices and dicts are not allowed", "`": "backticks are not allowed",
    ";": "one expression only: separate vector components with ','",
    "@": "'@' is not supported: write products with '*'", "%": "modulo is not supported",
    "!": "factorials and '!=' are not supported", "~": "bitwise operators are not allowed",
    "&": "logical operators are not allowed", "|": "logical operators are not allowed",
    "<": "comparisons are not allowed", ">": "comparisons are not allowed",
    "\\": "backslashes are not allowed (no escapes or line continuations)",
}


class ParseError(ValueError):
    """The text is not a valid expression; ``column`` is 1-based (or None), ``text`` the input."""

    def __init__(self, message: str, column: int | None = None, text: str | None = None):
        super().__init__(message)
        self.column, self.text = column, text


class _Tok(NamedTuple):
    kind: str  # "num", "name", "op", "(", ")", ",", "end"
    text: str
    col: int


class _Parser:
    """The scalar language. A subclass extends the tokens through ``NUMBER`` and
    :meth:`extra_op` (the matrix language's ``'`` ``.*`` ``./`` ``.^``, :mod:`symgrad.core.mlang`)."""

    NUMBER = _NUMBER

    def __init__(self, text):
        if not isinstance(text, str):
            raise ParseError(f"expected a string, got {type(text).__name__}")
        self.text, self.i, self.depth, self.bits, self.minmax_args = text, 0, 0, 0, 0
        if len(text) > MAX_LENGTH:
            self.fail(f"input is too long: {len(text)} characters (the limit is {MAX_LENGTH})")
        self.toks = self.tokenize()

    def fail(self, message: str, col: int | None = None):
        raise ParseError(message, col, self.text)

    # -- tokens -----------------------------------------------------------------------------------
    def tokenize(self) -> list[_Tok]:
        text, toks, i = self.text, [], 0
        opened = []  # columns of unclosed '(': balance and depth are settled before parsing
        while i < len(text):
            c, col = text[i], i + 1
            if c in " \t\r\n":
                i += 1
                continue
            if len(toks) >= MAX_TOKENS:
                self.fail(f"expression is too long: more than {MAX_TOKENS} tokens "
                          f"(at column {col})", col)
            if op := self.extra_op(text, i):
                toks.append(_Tok("op", op, col))
            elif m := self.NUMBER.match(text, i):
                if text.startswith(".", m.end()) and not self.extra_op(text, m.end()):
                    self.bad_char(m.end(), 0, "a number has at most one decimal point")
                if name := _NAME.match(text, m.end()):
                    if set(name.group()) <= set("_0123456789"):  # 1_000 ("1*_000" is no name)
                        self.fail(f"digit separators are not supported: write "
                                  f"{m.group()}{name.group().replace('_', '')} (column {col})", col)
                    if name.group().startswith("_"):
                        self.fail(f"a number runs into {name.group()!r} at column {col}: names "
                                  "start with a letter, products need *", col)
                    self.fail(f"implicit multiplication is not supported: write "
                              f"{m.group()}*{name.group()} (column {col})", col)
                if len(m.group()) > MAX_DIGITS:
                    self.fail(f"number at column {col} is too long (over {MAX_DIGITS} digits)", col)
                toks.append(_Tok("num", m.group(), col))
            elif m := _NAME.match(text, i):
                if m.group().startswith("_") or "__" in m.group():
                    self.fail(f"names may not start with an underscore or contain '__' "
                              f"({m.group()!r} at column {col})", col)
                if m.group() in RESERVED:
                    self.fail(f"{m.group()!r} is reserved: it names Python code, not math "
                              f"(column {col})", col)
                toks.append(_Tok("name", m.group(), col))
            elif c in "+-*/^()," and not text.startswith("//", i):
                if c == "(" and len(opened) == MAX_DEPTH:
                    self.fail(f"expression is nested too deeply: more than {MAX_DEPTH} levels "
                              f"of parentheses (at column {col})", col)
                if c == ")" and not opened:
                    self.fail(f"unexpected ')' at column {col}", col)
                if c == "(":
                    opened.append(col)
                elif c == ")":
                    opened.pop()
                op = "**" if text.startswith("**", i) else c
                toks.append(_Tok("op" if c in "+-*/^" else c, op, col))
            else:
                self.bad_char(i, len(opened))
            i += len(toks[-1].text)
        if opened:
            self.fail(f"unbalanced parenthesis: '(' at column {opened[-1]} is never closed",
                      opened[-1])
        return toks + [_Tok("end", "", len(text) + 1)]

    def extra_op(self, text: str, i: int) -> str | None:
        """An operator only a subclass's language has, starting at ``text[i]``; none here."""
        return None

    def bad_char(self, i: int, depth: int, why: str = ""):
        text, c, col = self.text, self.text[i], i + 1
        if c in "'\"":
            self.fail(f"strings are not allowed (column {col})", col)
        if c in "[]":
            self.fail(f"subscripts are not allowed ({c!r} at column {col})", col)
        if c == "=" and text.startswith("==", i):
            self.fail(f"comparisons are not allowed ('==' at column {col})", col)
        if c == "=":
            what = "keyword arguments" if depth else "assignments and equations"
            self.fail(f"{what} are not allowed ('=' at column {col})", col)
        if c == "/":  # only reached for '//'
            self.fail(f"floor division '//' is not supported (column {col})", col)
        attribute = c == "." and _NAME.match(text, i + 1)
        why = why or ("attribute access is not allowed" if attribute
                      else "a decimal point must be followed by digits" if c == "."
                      else "only ASCII characters are allowed" if not c.isascii()
                      else "control characters are not allowed" if not c.isprintable()
                      else _WHY.get(c, "it has no meaning here"))
        shown = repr(c) if c.isascii() else f"{c!r} (U+{ord(c):04X})"
        self.fail(f"unexpected character {shown} at column {col} ({why})", col)

    # -- expressions ------------------------------------------------------------------------------
    def peek(self, *ops: str) -> _Tok | None:
        """The next token; given ``ops``, only if it is one of those operators."""
        tok = self.toks[self.i]
        return tok if not ops or (tok.kind == "op" and tok.text in ops) else None

    def take(self) -> _Tok:
        self.i += 1
        return self.toks[self.i - 1]

    def nested(self, tok: _Tok, parse, *args):
        # Counted here as well as in the tokenizer: signs and powers nest without parentheses.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"expression is nested too deeply: more than {MAX_DEPTH} levels "
                      f"(at column {tok.col})", tok.col)
        value = parse(*args)
        self.depth -= 1
        return value

    def unexpected(self, tok: _Tok):
        if tok.kind == "end":
            prev = self.toks[self.i - 2]
            self.fail(f"unexpected end of input after {prev.text!r} at column {prev.col}", prev.col)
        hint = " (a vector component or argument is missing)" if tok.kind == "," else ""
        self.fail(f"unexpected {tok.text!r} at column {tok.col}{hint}", tok.col)

    def vector(self) -> list:
        if len(self.toks) == 1:
            self.fail("empty expression")
        parts = [self.expr()]
        while self.take().kind == ",":  # else the end: expr stops only at ',', ')' or the end,
            parts.append(self.expr())   # and a stray ')' was refused by the tokenizer
        return parts

    def expr(self, min_prec: int = 1):
        """Precedence climbing; min_prec 1: a sum, 2: a product, 3: the operand of a sign."""
        # 2 Python frames per sign, 4 per parenthesis, 6 per call: MAX_DEPTH fits in the stack.
        if tok := self.peek("+", "-"):
            self.take()
            left = self.nested(tok, self.expr, 3)
            left = -left if tok.text == "-" else left
        else:
            left = self.power()
        # Sums and products are built in one go: SymPy rebuilds them on every pairwise step,
        # which is quadratic (a sum of 2500 terms took 8 s, against 0.04 s at once).
        for prec, ops, build in ((2, ("*", "/"), sp.Mul), (1, ("+", "-"), sp.Add)):
            items = [left]
            while min_prec <= prec and (tok := self.peek(*ops)):
                self.take()
                rhs = self.expr(prec + 1)
                items.append(-rhs if tok.text == "-" else 1 / rhs if tok.text == "/" else rhs)
            left = items[0] if len(items) == 1 else build(*items)
        return left

    def power(self):
        base = self.primary()
        if (tok := self.peek()).kind in ("num", "name", "("):
            self.fail(f"missing operator before {tok.text!r} at column {tok.col} "
                      "(implicit multiplication is not supported: use '*')", tok.col)
        if not (tok := self.peek("**", "^")):
            return base
        self.take()
        exponent = self.nested(tok, self.expr, 3)
        if base.is_Rational and exponent.is_Rational:
            self.spend((max(abs(base.p), base.q) - 1).bit_length() * abs(exponent), tok)
        if exponent.is_Rational and not exponent.is_Integer:
            self.check_roots(base, tok)
        return base**exponent

    def check_roots(self, expr, tok: _Tok):
        # Roots hide well: sqrt(4*x) = 2*sqrt(x) and exp(log(n)/2) = sqrt(n) take them too.
        if any(max(abs(r.p), r.q).bit_length() > MAX_ROOT_BITS for r in expr.atoms(sp.Rational)):
            self.fail(f"number too large for {tok.text!r} at column {tok.col} (roots and functions "
                      f"take numbers of up to {MAX_ROOT_BITS} bits)", tok.col)

    def spend(self, bits, tok: _Tok):
        # Exact numbers only grow through literals and powers (a product has at most the bits of
        # its factors together), so one budget on those bounds every number SymPy computes.
        self.bits += bits
        if self.bits > MAX_BITS:
            self.fail(f"numbers too large near column {tok.col} (exact numbers are limited to "
                      f"about {MAX_BITS} bits)", tok.col)

    def number(self, tok: _Tok) -> sp.Rational:
        # Exact from the digits: Rational(0.1) would be 3602879701896397/36028797018963968.
        mantissa, _, exp = tok.text.lower().partition("e")
        whole, _, frac = mantissa.partition(".")
        scale = int(exp or 0) - len(frac)
        self.spend(4 * (len(whole + frac) + abs(scale)), tok)  # 10**k has fewer than 4k bits
        digits = int(whole + frac)
        return sp.Integer(digits * 10**scale) if scale >= 0 else sp.Rational(digits, 10**-scale)

    def primary(self):
        tok = self.take()
        if tok.kind == "num":
            return self.number(tok)
        if tok.kind == "name":
            return self.name(tok)
        if tok.kind != "(":
            self.unexpected(tok)
        if self.peek().kind == ")":
            self.fail(f"empty parentheses at column {tok.col}", tok.col)
        value = self.nested(tok, self.expr)
        if (close := self.take()).kind != ")":  # balanced, so it is a ','
            self.fail(f"unexpected ',' at column {close.col} (tuples are not allowed: commas "
                      "separate vector components or function arguments)", close.col)
        return value

    def name(self, tok: _Tok):
        name, is_call = tok.text, self.peek().kind == "("
        if name in FUNCTIONS and not is_call:
            self.fail(f"{name!r} is a function: call it as {name}(...) (column {tok.col})", tok.col)
        if name in FUNCTIONS:
            return self.nested(tok, self.call, tok)
        if is_call and name in CONSTANTS:
            self.fail(f"{name!r} is a constant, not a function (column {tok.col})", tok.col)
        if is_call:
            self.fail(f"unknown function {name!r} at column {tok.col} "
                      f"(allowed: {', '.join(sorted(FUNCTIONS))})", tok.col)
        return CONSTANTS[name] if name in CONSTANTS else sp.Symbol(name, real=True)

    def call(self, tok: _Tok):
        self.take()
        args = [] if self.peek().kind == ")" else [self.expr()]
        while self.peek().kind == ",":
            self.take()
            args.append(self.expr())
        self.take()  # the ')': the tokenizer checked the balance, and expr stops at ')' or ','
        func, arity = FUNCTIONS[tok.text]
        lo, hi = arity * 2 if len(arity) == 1 else arity
        if len(args) < lo or (hi is not None and len(args) > hi):
            wanted = (f"exactly {lo} argument" + "s" * (lo != 1) if lo == hi else
                      f"at least {lo} arguments" if hi is None else f"{lo} to {hi} arguments")
            self.fail(f"{tok.text!r} takes {wanted}, got {len(args)} (column {tok.col})", tok.col)
        self.minmax_args += len(args) if hi is None else 0
        if self.minmax_args > MAX_MINMAX_ARGS:
            self.fail(f"too many arguments to {tok.text!r} at column {tok.col} (at most "
                      f"{MAX_MINMAX_ARGS} over all max/min calls)", tok.col)
        for arg in args:
            self.check_roots(arg, tok)
        try:
            return func(*args)
        except (TypeError, ValueError, ArithmeticError) as exc:  # e.g. max(x, sqrt(-1))
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            self.fail(f"cannot apply {tok.text!r} at column {tok.col}: {reason}", tok.col)


def parse(text: str) -> sp.Expr | sp.Matrix:
    """Parse ``text``; comma-separated components give a column :class:`sympy.Matrix`."""
    parser = _Parser(text)
    try:
        parts = parser.vector()
    except RecursionError:  # a safety net only: MAX_DEPTH keeps the parser well inside the stack
        raise ParseError("expression is nested too deeply for SymPy", None, text) from None
    for part in parts:
        for r in part.atoms(sp.Rational):
            digits = digits_of(r)
            if digits > PRINT_DIGITS:
                raise ParseError(f"a number in the expression has {digits} digits; symgrad prints "
                                 f"exact numbers of up to {PRINT_DIGITS} digits", None, text)
    return parts[0] if len(parts) == 1 else sp.Matrix(parts)


def digits_of(r: sp.Rational) -> int:
    """The decimal digits of the larger of a rational's numerator and denominator, without
    converting it (that is what fails past Python's limit): an upper bound, exact to one."""
    return int(max(abs(r.p), r.q).bit_length() * 0.30103) + 1


def parse_symbols(text: str) -> list[sp.Symbol]:
    """Parse variable names separated by spaces and/or commas: "x1 x2", "x1,x2", "x1, x2"."""
    parser = _Parser(text)
    toks, symbols, seen = parser.toks[:-1], [], set()
    if not toks:
        parser.fail("empty list of symbols")
    for prev, tok in zip([None] + toks, toks):
        if tok.kind == "," and prev is not None and prev.kind == "name" and tok is not toks[-1]:
            continue
        if tok.kind != "name":
            parser.fail(f"expected a symbol name at column {tok.col}, got {tok.text!r}", tok.col)
        kind = "function" if tok.text in FUNCTIONS else "constant" if tok.text in CONSTANTS else ""
        if kind:
            parser.fail(f"{tok.text!r} is a {kind}, not a symbol name (column {tok.col})", tok.col)
        if tok.text in seen:
            parser.fail(f"duplicate symbol {tok.text!r} at column {tok.col}", tok.col)
        seen.add(tok.text)
        symbols.append(sp.Symbol(tok.text, real=True))
    return symbols
