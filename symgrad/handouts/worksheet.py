"""A matrix-calculus worksheet: a text file of problems, one per line, → a handout.

Where it sits: handout (above derive). Each line is written as the command line would be,
``grad "x'*A*x" --wrt x --vector x --matrix A`` (``grad``, ``derivative`` or ``hessian``, the
expression, then the options of those commands); ``--steps`` is accepted and changes nothing (a
worksheet always shows every step); blank lines and lines starting with ``#`` are skipped. A line is split by :mod:`shlex` (quotes, no evaluation) and every error names the file
and the line.
"""
from __future__ import annotations

import shlex

from symgrad.core.mlang import parse_sizes
from symgrad.derive import calculus, mcalc
from symgrad.derive.hessian import derive_hessian

KINDS = {"grad": mcalc.derive_grad, "derivative": mcalc.derive_derivative,
         "hessian": mcalc.derive_hessian, "jacobian": None}
# with no --vector/--matrix/--symmetric/--size, these take the scalar language and several
# variables, as the commands do: hessian "x^2*y" --wrt x,y; jacobian "x*y, x+y" --wrt x,y
SCALAR = {"hessian": derive_hessian, "jacobian": calculus.derive_jacobian}
_OPTIONS = {"--wrt": "wrt", "--vector": "vectors", "--matrix": "matrices",
            "--symmetric": "symmetric", "--size": "sizes"}
MAX_PROBLEMS = 50  # each is verified against sympy.diff: 50 take about 20 s


def read_problems(path: str) -> list:
    """The derivations of every problem in the file at ``path``."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    ds = []
    for k, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            ds.append(problem(line))
        except ValueError as e:
            raise ValueError(f"{path}, line {k}: {str(e).splitlines()[0]}") from None
        if len(ds) > MAX_PROBLEMS:
            raise ValueError(f"{path}: more than {MAX_PROBLEMS} problems in one worksheet")
    if not ds:
        raise ValueError(f"{path}: no problems (one per line: grad \"x'*A*x\" --wrt x "
                         "--vector x --matrix A)")
    return ds


def problem(line: str):
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise ValueError(f"cannot split the line: {e}") from None
    if len(words) < 2 or words[0] not in KINDS:
        raise ValueError(f"a problem starts with {', '.join(KINDS)} and the expression, got "
                         f"{line.strip()[:40]!r}")
    kind, expr, rest = words[0], words[1], words[2:]
    opts: dict = {"vectors": [], "matrices": [], "symmetric": [], "sizes": [], "wrt": None}
    while rest:
        flag = rest.pop(0)
        if flag == "--steps":  # as on the command line; a worksheet shows the steps anyway
            if rest and rest[0] == "full":
                raise ValueError("--steps full is not for a worksheet (it writes scalar "
                                 "partials rule by rule); --steps alone is accepted, the "
                                 "steps are always shown")
            continue
        if flag not in _OPTIONS or not rest:
            raise ValueError(f"unknown option {flag!r} or a missing value (the options are "
                             f"{', '.join(_OPTIONS)} and --steps)")
        key, value = _OPTIONS[flag], rest.pop(0)
        if key == "wrt":
            opts["wrt"] = value
        else:
            opts[key].append(value)
    if opts["wrt"] is None:
        raise ValueError("--wrt is missing")
    declared = opts["vectors"] or opts["matrices"] or opts["symmetric"] or opts["sizes"]
    if kind in SCALAR and not declared:
        return SCALAR[kind](expr, opts["wrt"])
    if kind == "jacobian":
        raise ValueError("jacobian takes the scalar language; for the matrix language write "
                         "derivative")
    return KINDS[kind](expr, opts["wrt"], vectors=" ".join(opts["vectors"]),
                       matrices=" ".join(opts["matrices"]),
                       symmetric=" ".join(opts["symmetric"]),
                       sizes=parse_sizes(opts["sizes"]))


__all__ = ["read_problems", "problem", "KINDS"]
