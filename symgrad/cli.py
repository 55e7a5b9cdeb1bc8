"""The ``symgrad`` command line: a thin layer, each command one library call and a printer.

Where it sits: the outermost face. Bad input of any kind ends in one line on stderr and exit code 2,
never a traceback.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import warnings

import click

FORMATS = click.Choice(["text", "latex", "json"])
# Errors that mean "the input is wrong": reported in one line, exit code 2 (_engine adds symgrad's
# ParseError and MissingRuleError, which only a command, run with the engine loaded, can raise).
INPUT_ERRORS = (ValueError, TypeError, KeyError, OSError)


def _engine() -> None:
    """Import the engine (SymPy, numpy and symgrad's layers) into this module's namespace, once,
    when a command runs (EngineCommand.invoke), never for --help, --version or a usage error.

    Why (issue 15): these imports are 0.65 s, nearly all SymPy, and ``symgrad --help`` took 0.87 s;
    now the group and every option are built from click alone. The facade is loaded first, as
    the console script's ``import symgrad`` used to, so every registration (ops, backends,
    notations) is made before a command's body runs, as before."""
    global INPUT_ERRORS
    if "calculus" in globals():
        return
    import symgrad
    symgrad._load()
    from symgrad.derive import calculus, mcalc
    from symgrad.derive.hessian import derive_hessian
    from symgrad.derive.assemble import names_parameter
    from symgrad.derive.indexed import (DEFAULT_COST, NotIndexable, general,
                                        shape_of as index_shape)
    from symgrad.compile.mfunction import MatrixDerivation
    from symgrad.compile.source import python_function
    from symgrad.core.mlang import parse_sizes
    from symgrad.core.derivation import Derivation
    from symgrad.printing.text import MatrixSympifyPrinter, SympifyPrinter, TextPrinter, memo
    from symgrad.core.primitives import MissingRuleError
    from symgrad.core.parse import ParseError
    from symgrad.printing.latex import latex
    from symgrad.handouts.build import handout_file
    from symgrad.handouts.pdf import TeXError
    from symgrad.network import load_network
    from symgrad.printing.latex import to_latex
    from symgrad.printing.names import notation as notation_preset
    from symgrad.network import mlp, parse_spec
    from symgrad.run.plot import check_plot_path, plot_history
    from symgrad.handouts.diagram import read_history, write_history
    from symgrad.run.train import (DATA_DEFAULTS, DATA_HEADS, TrainingWarning, accuracy,
                                   check_data, check_size, load_data, output_problem, params_path,
                                   save_params, train_defaults, train_starts)
    INPUT_ERRORS = INPUT_ERRORS + (ParseError, MissingRuleError)
    names = dict(locals())
    del names["symgrad"]
    globals().update(names)


class EngineCommand(click.Command):
    """A command that loads the engine (_engine) before its body runs, after its arguments are
    parsed: --help and usage errors end before that, without SymPy."""

    def invoke(self, ctx):
        _engine()
        return super().invoke(ctx)


class OneLineErrors(click.Group):
    """A click group whose every error, click's own included, is one line on stderr and exit 2."""

    command_class = EngineCommand  # (what @cli.command makes)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not (sys.argv[1:] if args is None else args):  # bare `symgrad`: its help, not an error
            with self.make_context(prog_name or "symgrad", ["--help"], resilient_parsing=True) as ctx:
                click.echo(self.get_help(ctx))
            sys.exit(0)
        try:
            rv = super().main(args, prog_name or "symgrad", complete_var, standalone_mode=False,
                              **extra)
        except click.exceptions.Abort as e:  # click's word for Ctrl-C and Ctrl-D
            if isinstance(e.__cause__, KeyboardInterrupt):
                click.echo("symgrad: interrupted", err=True)
                sys.exit(130)  # 128 + SIGINT, as shells report it
            click.echo("symgrad: aborted", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("symgrad: interrupted", err=True)
            sys.exit(130)
        except (MemoryError, RecursionError) as e:  # a last resort: the limits should come first
            click.echo(f"symgrad: error: the input is too large for this machine "
                       f"({type(e).__name__})", err=True)
            sys.exit(2)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"symgrad: error: {where}{e.strerror or e}", err=True)
            sys.exit(2)
        except click.ClickException as e:
            if isinstance(e, click.NoSuchOption) and e.possibilities:
                e.possibilities = _closest(e.option_name, e.possibilities)
            click.echo(f"symgrad: error: {e.format_message()}", err=True)
            sys.exit(2)
        except INPUT_ERRORS as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            click.echo(f"symgrad: error: {msg}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


def _closest(name: str, options) -> list:
    """The options nearest to a misspelt one: click offers every option difflib finds within
    0.6, so --levl got "Did you mean one of: '--help', '--level'?" (ratios 0.67 and 0.92)."""
    from difflib import SequenceMatcher
    ratio = {o: SequenceMatcher(None, o, name).ratio() for o in options}  # (as click ranks them)
    best = max(ratio.values())
    return [o for o in options if ratio[o] == best]


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="symgrad")
def cli():
    """symgrad: symbolic Jacobians and gradients, derived step by step.

    \b
    Example:
      symgrad jacobian "2*x1 + x2, pi*x2, -x1/x2" --wrt x1,x2 --steps
    """


class StepsChoice(click.Choice):
    """--steps alone ("normal") or --steps full; a word after it that is neither was meant as
    the expression, and the error says where --steps goes."""

    def convert(self, value, param, ctx):
        if value not in self.choices:
            self.fail(f"{value!r} is not 'full' (--steps takes 'full' or nothing; give it after "
                      "the expression)", param, ctx)
        return value


def steps_option(full: str = "each partial derivative rule by rule", matrix: str = ""):
    """--steps (every step) or --steps full (and the elementary rules inside: sum, product,
    quotient, power, the chain rule with u = …, each line checked against sympy.diff).
    ``full`` empty: the command takes --steps alone (the matrix language's grad and derivative,
    whose steps are differentials, each naming its rule); ``matrix``: what --steps full is not
    for, said in the help."""
    if not full:
        return click.option("--steps", type=StepsChoice(["normal", "full"]), is_flag=False,
                            flag_value="normal", default=None, metavar="",
                            help="Print every step of the derivation: the differential, the "
                                 "trace trick and the identified result, each naming its rule "
                                 "(there is no --steps full: that writes scalar partials, for "
                                 "jacobian and hessian of a function of scalars).")
    return click.option("--steps", type=StepsChoice(["normal", "full"]), is_flag=False,
                        flag_value="normal", default=None, metavar="[full]",
                        help="Print every step of the derivation; --steps full: also "
                             f"{full} (sum, product, quotient, power, chain rule with u = …), "
                             f"each line checked against sympy.diff{matrix}.")


def ascii_option(fn):
    """--ascii: the text format in ASCII (TextPrinter's unicode=False), kept on the click context
    so the printing tail reads it without every command passing it along."""
    def keep(ctx, _param, value):
        ctx.meta["symgrad.unicode"] = not value
    return click.option("--ascii", is_flag=True, expose_value=False, callback=keep,
                        help="The text format in ASCII: yhat, x1, -, <= (no Unicode).")(fn)


def _text_settings() -> dict:
    ctx = click.get_current_context(silent=True)
    return {"unicode": ctx.meta.get("symgrad.unicode", True) if ctx else True}


def _no_full(steps, what: str) -> None:
    if steps == "full":
        raise click.UsageError(f"--steps full writes scalar partials rule by rule (jacobian, "
                               f"hessian of a function of scalars, derive --level element); {what}")


def _emit(d: Derivation, fmt: str, steps: bool, key: str, whole: bool = False) -> None:
    """Print a derivation's result (or all its steps) in the chosen format; ``whole``: the JSON
    also gives the result as one string, "result", as Derivation.to_dict does."""
    M = d.result
    if fmt == "json":
        entry = memo(SympifyPrinter().doprint)
        rows = [[entry(e) for e in row] for row in M.tolist()]
        out = {key: rows, "shape": [M.rows, M.cols]}
        if whole:  # on one line, as the entries are (the printer's Matrix spans several)
            out["result"] = "Matrix([%s])" % ", ".join("[%s]" % ", ".join(r) for r in rows)
    _echo(d, M, fmt, steps, out if fmt == "json" else None)


def _echo(d: Derivation, result, fmt: str, steps: bool, out: dict | None) -> None:
    """Print ``out`` as JSON (with the steps when asked), or the result or every step as LaTeX
    or text: the tail every derivation command shares."""
    if fmt == "json":
        if steps:
            out["steps"] = d.to_dict()["steps"]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    elif fmt == "latex":
        click.echo(d.to_latex() if steps else latex(result))
    else:
        text = _text_settings()
        click.echo(d.to_text(**text) if steps else TextPrinter(text).doprint(result))


@cli.command(context_settings={"ignore_unknown_options": True})  # "-x" is an expression
@click.argument("expression")
@click.option("--wrt", required=True, help="Variables, comma- or space-separated: x1,x2")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@steps_option()
@ascii_option
def jacobian(expression, wrt, fmt, steps):
    """The Jacobian of EXPRESSION (components separated by commas).

    Rows are the outputs, columns the variables given with --wrt.

    \b
    Example:
      symgrad jacobian "2*x1 + x2, pi*x2, -x1/x2" --wrt x1,x2
      symgrad jacobian "2*a*x + b/y" --wrt a,b --format json
      symgrad jacobian "x**2*sin(x), (x**2 + 1)/(x - 1)" --wrt x --steps full
    """
    _check_wrt_used(expression, wrt, "the expression", "a column of zeros in the Jacobian")
    _emit(calculus.derive_jacobian(expression, wrt, steps=steps or "normal"), fmt, steps,
          "jacobian")


def _check_wrt_used(fn: str, wrt: str, where: str, why: str) -> None:
    """A --wrt name that its function never mentions is an error naming it (issue 13: `symgrad
    jacobian "x**2" --wrt x,y` printed [[2*x, 0]] without a word, a misspelt name looking like a
    real zero). The library keeps the zero column (sg.jacobian("x**2", "x y")): mathematically
    right, and a program may want it."""
    F = calculus.as_vector(fn, "f")
    names = {s.name for s in F.free_symbols}
    missing = [x.name for x in calculus.as_symbols(wrt, F) if x.name not in names]
    if missing:
        raise click.UsageError(f"--wrt: {', '.join(map(repr, missing))} "
                               f"{'does' if len(missing) == 1 else 'do'} not appear in {where} "
                               f"({why})")


# -- matrix calculus: grad, derivative (and hessian's matrix form) ---------------------------------
MATRIX_FORMATS = click.Choice(["text", "latex", "json", "python"])


def _sizes(items) -> dict:
    try:
        return parse_sizes(items)
    except ValueError as e:
        raise click.BadParameter(str(e).split(": ", 1)[1], param_hint="--size") from None


def _dim(d):
    """A size for JSON: a number, or a size symbol's name."""
    return int(d) if getattr(d, "is_Integer", False) or isinstance(d, int) else str(d)


def matrix_options(fn):
    for option in reversed([
            click.option("--wrt", required=True, help="The variable: x"),
            click.option("--vector", "vectors", multiple=True, help="Vector names: --vector w,y"),
            click.option("--matrix", "matrices", multiple=True, help="Matrix names: --matrix X"),
            click.option("--symmetric", multiple=True, help="Symmetric matrix names"),
            click.option("--size", "sizes", multiple=True,
                         help="A size: --size X=100x5, --size w=n (else inferred, symbolic)"),
            click.option("--format", "fmt", type=MATRIX_FORMATS, default="text",
                         show_default=True),
            steps_option(full=""), ascii_option]):
        fn = option(fn)
    return fn


def _matrix(derive, expression, wrt, vectors, matrices, symmetric, sizes, fmt, steps):
    _no_full(steps, "the matrix language's grad, derivative and hessian derive by "
             "differentials, and --steps alone prints them, each naming its rule")
    if fmt == "python" and steps:
        raise click.UsageError("--steps is for the text, latex and json formats; --format "
                               "python prints the function alone")
    d = derive(expression, wrt, vectors=" ".join(vectors), matrices=" ".join(matrices),
               symmetric=" ".join(symmetric), sizes=_sizes(sizes))
    d = MatrixDerivation(d.title, d.steps, d.result, d.meta)
    _scalars_hint(expression, d.meta["problem"])
    R = d.result
    if fmt == "python":
        click.echo(d.to_python(), nl=False)
    elif fmt == "json":
        problem = d.meta["problem"]
        out = {"result": MatrixSympifyPrinter().doprint(R),
               "shape": [_dim(x) for x in getattr(R, "shape", (1, 1))],
               "latex": latex(R),
               "symbols": {n: {"kind": problem.kinds[n],
                               "shape": [_dim(x) for x in getattr(s, "shape", ())]}
                           for n, s in problem.symbols.items()}}
        _echo(d, R, fmt, steps, out)
    else:
        _echo(d, R, fmt, steps, None)


def _scalars_hint(expression: str, problem) -> None:
    """One line on stderr when the text transposes or multiplies entry by entry, but every name
    in it is a scalar: --vector/--matrix were likely forgotten (the result stands, exit 0)."""
    names = list(problem.kinds)
    if names and all(k == "scalar" for k in problem.kinds.values()) and \
            re.search(r"'|\.\*|\./|\.\^", expression):
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        click.echo(f"symgrad: note: {listed} {'is a scalar' if len(names) == 1 else 'are scalars'}"
                   " here; declare vectors with --vector, matrices with --matrix", err=True)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("expression")
@matrix_options
def grad(expression, wrt, vectors, matrices, symmetric, sizes, fmt, steps):
    """The gradient of a scalar matrix expression, in matrix form.

    * is the matrix product, .* ./ .^ act entry by entry, ' transposes; functions tr det logdet
    inv diag sum norm1 norm2 eye ones, and exp log sqrt abs sin cos tanh sigmoid relu softplus
    logsumexp softmax. Undeclared names are scalars.

    \b
    Example:
      symgrad grad "x'*A*x" --wrt x --vector x --matrix A
      symgrad grad "norm2(X*w - y)^2" --wrt w --vector w,y --matrix X --steps
    """
    _matrix(mcalc.derive_grad, expression, wrt, vectors, matrices, symmetric, sizes, fmt, steps)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("expression")
@matrix_options
def derivative(expression, wrt, vectors, matrices, symmetric, sizes, fmt, steps):
    """The Jacobian of a vector (or scalar) matrix expression with respect to a vector.

    \b
    Example:
      symgrad derivative "softmax(x)" --wrt x --vector x
      symgrad derivative "A*x" --wrt x --vector x --matrix A --format json
    """
    _matrix(mcalc.derive_derivative, expression, wrt, vectors, matrices, symmetric, sizes, fmt, steps)


@cli.command(context_settings={"ignore_unknown_options": True})  # "-x**2" is an expression
@click.argument("expression")
@click.option("--wrt", required=True,
              help="Variables, comma- or space-separated: x,y; in the matrix language (with "
                   "--vector/--matrix) one variable: w")
@click.option("--format", "fmt", type=click.Choice(["text", "latex", "json", "python"]),
              default="text", show_default=True,
              help="python: a function on floats that needs only Python's math module (in the "
                   "matrix language, a numpy module).")
@steps_option("each first and second partial derivative rule by rule",
              " (a function of scalars only: the matrix language's steps are differentials)")
@click.option("--vector", "vectors", multiple=True, help="Matrix language: vector names")
@click.option("--matrix", "matrices", multiple=True, help="Matrix language: matrix names")
@click.option("--symmetric", multiple=True, help="Matrix language: symmetric matrix names")
@click.option("--size", "sizes", multiple=True, help="Matrix language: --size X=100x5")
@ascii_option
def hessian(expression, wrt, fmt, steps, vectors, matrices, symmetric, sizes):
    """The Hessian of the scalar EXPRESSION: its second partial derivatives.

    Entry (i, j) is the derivative by the i-th and j-th variables given with --wrt; the matrix
    is symmetric, and only its upper triangle is derived. With --vector/--matrix/--symmetric the
    EXPRESSION is in the matrix language (as for grad) and the Hessian in matrix form.

    \b
    Example:
      symgrad hessian "x**3*y + sin(x*y)" --wrt x,y
      symgrad hessian "log(1 + exp(-(w1*a + w2*b)))" --wrt w1,w2 --format python
      symgrad hessian "x'*A*x" --wrt x --vector x --matrix A
    """
    if vectors or matrices or symmetric or sizes:
        _matrix(mcalc.derive_hessian, expression, wrt, vectors, matrices, symmetric, sizes, fmt,
                steps)
        return
    if fmt == "python" and steps:
        raise click.UsageError("--steps is for the text, latex and json formats; --format "
                               "python prints the function alone")
    try:
        d = derive_hessian(expression, wrt, steps=steps or "normal")
    except ParseError as e:
        if re.search(r"'|\.\*|\./|\.\^", expression):  # the matrix language, undeclared
            raise click.UsageError(f"{str(e).splitlines()[0]}: ' and .* are the matrix "
                                   "language; declare vectors with --vector, matrices with "
                                   "--matrix") from None
        raise
    if fmt == "python":
        click.echo(python_function(d.result, d.meta["wrt"], "hessian"), nl=False)
    else:
        _emit(d, fmt, steps, "hessian", whole=True)


def _parse_feed(text: str) -> dict:
    """'x1=1,x3=2' -> {'x1': 1, 'x3': 2}: which output of the inner function feeds each input."""
    feed = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, index = part.partition("=")
        if not eq or not index.strip().isdigit():
            raise click.BadParameter(f"expected input=output_number, got {part!r}",
                                     param_hint="--feed")
        feed[name.strip()] = int(index)
    return feed


@cli.command()
@click.option("--fn", "fns", multiple=True, required=True,
              help="A function, outermost first; give one --fn per function.")
@click.option("--wrt", "wrts", multiple=True, required=True,
              help="The inputs of the matching --fn, comma-separated.")
@click.option("--feed", "feeds", multiple=True,
              help="Per junction, which output of the inner function feeds each input of the "
                   "outer one: x1=1,x2=3 (default: in order).")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@steps_option()
@ascii_option
def chain(fns, wrts, feeds, fmt, steps):
    """The Jacobian of f∘g(∘h…) by substitution and by the chain rule, checked to agree.

    \b
    Example:
      symgrad chain --fn "x1 - 2*x2 + x3/4" --wrt x1,x2,x3 \\
                    --fn "x1 + 2*x2, x2, -x1 + 3" --wrt x1,x2 --steps
    """
    _no_full(steps, "chain multiplies whole Jacobians (symgrad jacobian … --steps full writes "
             "each partial of one function rule by rule)")
    if len(fns) != len(wrts):
        raise click.UsageError(f"give one --wrt per --fn ({len(fns)} --fn, {len(wrts)} --wrt)")
    if feeds and len(feeds) != len(fns) - 1:
        raise click.UsageError(f"give one --feed per junction ({len(fns) - 1}), got {len(feeds)}")
    feed = [_parse_feed(f) for f in feeds] if feeds else None
    names = "fghkpq"
    for i, (f, w) in enumerate(zip(fns, wrts)):
        name = names[i] if i < 6 else f"f{i}"
        inner = names[i + 1] if i + 1 < 6 else f"f{i + 1}"
        _check_wrt_used(f, w, f"--fn {i + 1} ({name})",
                        "a column of zeros in the Jacobian" if i == len(fns) - 1 else
                        f"list only the inputs {name} uses; --feed says which output of {inner} "
                        "feeds each")
    d = calculus.chain(*[(f, w, names[i] if i < 6 else f"f{i}")
                         for i, (f, w) in enumerate(zip(fns, wrts))], feed=feed)
    _emit(d, fmt, steps, "jacobian")


SPEC_OPTIONS = {"hidden": "--hidden", "output_act": "--output", "loss": "--loss",
                "penalty": "--penalty"}


def _spec_only(ctx, network: str) -> None:
    """--hidden/--output/--loss/--penalty describe a spec; a network file (or a worksheet)
    defines its own, and those options were ignored without a word."""
    if not network.endswith((".py", ".txt")):
        return
    given = [flag for name, flag in SPEC_OPTIONS.items() if name in ctx.params
             and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a "
                               f"spec such as 2-2-1; {network} defines its own")


def network_options(f):
    """--hidden/--output/--loss, the same for every command that takes a network spec."""
    f = click.option("--loss", default="mse", show_default=True,
                     help="mse, bce, cross_entropy, or an expression in yhat and y.")(f)
    f = click.option("--output", "output_act", default="identity", show_default=True,
                     help="Output activation: identity, sigmoid or softmax.")(f)
    return click.option("--hidden", default="relu", show_default=True,
                        help="Hidden activation: identity relu leaky_relu sigmoid tanh softplus, "
                             "or an expression in x.")(f)


def _hard_stop(network: str, timeout: float):
    """What --timeout does when a network file ignores the alarm (the file is the user's code:
    signal.signal(SIGALRM, SIG_IGN) made `symgrad derive` run on for minutes): the same one
    line, and the process ends with exit code 2."""
    def stop():
        sys.stderr.write(f"symgrad: error: {network}: still running after {timeout:g} s, so it "
                         "was stopped (the limit is --timeout; 0 for none)\n")
        sys.stderr.flush()
        os._exit(2)
    return stop


def file_timeout(f):
    """--timeout for commands that run a user's network file."""
    return click.option("--timeout", type=click.FloatRange(min=0, max=1e6), default=60.0,
                        show_default=True, metavar="SECONDS",
                        help="Stop a network file (.py) still running after this long; 0: no "
                             "limit.")(f)


@cli.command("handout")
@click.argument("network")
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="out.tex, out.pdf (runs pdflatex) or out.md; default: LaTeX on stdout.")
@click.option("--level", type=click.Choice(["matrix", "element", "both"]), default=None)
@click.option("--verbosity", type=click.Choice(["brief", "normal", "full"]), default=None,
              help="brief: each section its chain rule and result; normal: every step once; "
                   "full: every step everywhere. Default: brief for beamer past one layer with "
                   "parameters (slides for a lecture: XOR's are 19 pages, 32 at normal) and for "
                   "an article past four, else normal.")
@click.option("--format", "fmt", type=click.Choice(["article", "beamer", "markdown"]),
              default=None, help="Default: markdown for .md, else article.")
@click.option("--notation", default=None, metavar="PRESET",
              help="slides, feature, esl, or a preset added with symgrad.register_notation (a network "
                   "file may add one: the name is checked once the file has run).")
@click.option("--exercises/--no-exercises", default=None)
@click.option("--reveal/--no-reveal", default=None,
              help="Beamer: uncover each derivation in a few clicks (the default), or show "
                   "every frame whole, one page each, to print as a paper handout.")
@click.option("--history", "history_file", type=click.Path(dir_okay=False), default=None,
              help="The loss of each epoch (a .json list, or an .npz with an array 'history'): "
                   "adds a Training section with the loss curve.")
@network_options
@file_timeout
@click.pass_context
def handout_cmd(ctx, network, out, level, verbosity, fmt, notation, exercises, reveal,
                history_file, hidden, output_act, loss, timeout):
    """A handout deriving backprop for NETWORK: a spec like 2-2-1, or a Python file that defines
    a Network named net; or a matrix-calculus worksheet from a .txt file of problems, one a
    line, written as the commands are: grad "x'*A*x" --wrt x --vector x --matrix A.

    \b
    Example:
      symgrad handout problems.txt -o worksheet.pdf
      symgrad handout 2-2-1 --level both -o xor.pdf
      symgrad handout 784-256-128-10 --output softmax --loss cross_entropy -o mnist.tex
      symgrad handout examples/handouts/feature.py --format beamer -o feature.pdf
      symgrad handout 2-2-1 --format beamer --no-reveal -o xor-print.pdf
    """
    _spec_only(ctx, network)
    if reveal is not None and fmt != "beamer":  # (an article or Markdown has no clicks)
        raise click.UsageError(f"--{'' if reveal else 'no-'}reveal is for --format beamer: an "
                               "article or Markdown has no clicks")
    try:
        text = handout_file(network, out, fmt, hidden, output_act, loss, timeout=timeout,
                            on_overrun=_hard_stop(network, timeout),
                            level=level, verbosity=verbosity, notation=notation,
                            exercises=exercises, reveal=reveal,
                            history=read_history(history_file) if history_file else None)
    except TeXError as e:
        raise click.ClickException(str(e)) from None
    if out is None:
        click.echo(text, nl=False)


@cli.command()
@click.argument("network")
@network_options
@click.option("--wrt", help="Parameter: W1, b2 (matrix level) or w1, W1_12 (element level; W1 "
                            "there: each entry's partial, assembled into ∇W1). Default: every "
                            "parameter.")
@click.option("--level", type=click.Choice(["matrix", "element", "index"]), default="matrix",
              show_default=True, help="index: the general entry (W1_ij, ESL's "
              "alpha_ml) in symbolic indices, any depth, checked at every index of 2-2-1 and "
              "3-2-2 (2-2-2-1 and 3-2-2-2 …).")
@click.option("--of", type=click.Choice(["loss", "output"]), default=None,
              help="Element and index levels: differentiate the loss (the default) or the "
                   "output ŷ.")
@click.option("--cost", type=click.Choice(["mean", "sum"]), default=None,
              help="The cost over the examples: their mean or their sum. Default: as the "
                   "notation's notes (sum for esl, else mean).")
@click.option("--naming", type=click.Choice(["notes", "position"]), default=None,
              help="Element level: scalar names as in the notes (w1…w6, b1…b3) or by position "
                   "(W1_12 = row 1, column 2 of W1; W1_1,11 once W1 has 10 rows or columns). "
                   "Default: notes for up to 40 scalars.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.option("--notation", default=None, metavar="PRESET",
              help="With --format latex: slides (the default), feature, esl, or a preset added "
                   "with symgrad.register_notation (a network file may add one); with --level "
                   "index also the index letters (esl the default).")
@steps_option("each local partial derivative rule by rule (with --level element)")
@file_timeout
@ascii_option
@click.pass_context
def derive(ctx, network, hidden, output_act, loss, wrt, level, of, naming, cost, fmt, notation,
           steps, timeout):
    """Derive the gradient of a network's loss, step by step.

    NETWORK is a spec such as 2-2-1 (with --hidden/--output/--loss) or a Python file that
    defines a symgrad Network.

    \b
    Example:
      symgrad derive 2-2-1 --hidden relu --output identity --loss mse --wrt W1
      symgrad derive 2-2-1 --level element --of output --wrt w1
      symgrad derive 2-2-1 --level element --naming position --wrt W1_12
      symgrad derive 2-2-1 --level element --wrt W1   (every entry, assembled into ∇W1)
      symgrad derive 2-2-1 --level element            (all of them, then gradient descent)
      symgrad derive 2-2-1 --level index --notation esl --format latex --wrt W1_ml
    """
    if level == "index":
        if naming or steps:
            raise click.UsageError("--naming and --steps are for --level element (the index "
                                   "level writes its steps in the notation's letters)")
        return _derive_index(network, hidden, output_act, loss, wrt, of, cost, fmt, notation,
                             timeout)
    if naming and level != "element":
        raise click.UsageError("--naming is for --level element (matrix names are W1, b1, …)")
    if of == "output" and level != "element":  # (it was ignored: the loss's gradient printed)
        raise click.UsageError("--of output is for --level element (the matrix level derives "
                               "the gradient of the loss)")
    if steps == "full" and level != "element":
        raise click.UsageError("--steps full is for --level element (each scalar partial rule "
                               "by rule); the matrix level's steps are Jacobians")
    if steps == "normal":  # README once said derive takes --steps; click's "No such option" said
        raise click.UsageError("derive always prints every step; --steps is for jacobian, "
                               "chain, grad and derivative (--steps full, with --level element, "
                               "adds the rules inside each partial)")
    _spec_only(ctx, network)
    if notation is not None and fmt != "latex":  # text and JSON have no notation to choose
        raise click.UsageError(f"--notation is for --format latex (the {fmt} output names "
                               "W1, z1, h1 as the engines do)")
    net = load_network(network, hidden, output_act, loss, timeout=timeout,
                       on_overrun=_hard_stop(network, timeout))
    net.check()
    if level == "element" and wrt and general(wrt, net) and not (naming or steps):
        # W1_ij: the general entry, beside the concrete W1_12 (the index level)
        return _derive_index(net, None, None, None, wrt, of, cost, fmt, notation, timeout)
    preset = notation_preset(notation or "slides")  # after the file: it may register one
    if level == "element" and naming is None and wrt and \
            re.fullmatch(r"[A-Za-z]+\d+_\d+(,\d+)?", wrt):
        naming = "position"  # W1_12 can only be a position name
    opts = {"of": of or "loss", "naming": naming, "steps": steps or "normal"} \
        if level == "element" else {}
    if steps == "full" and (not wrt or names_parameter(net, wrt, naming)):
        raise click.UsageError("--steps full is for one weight (--wrt w1): each partial's "
                               "rules; a parameter's entries are assembled from their results")
    cost = cost or DEFAULT_COST.get(preset.name, "mean")  # as the notation's notes: ESL sums
    if level == "element" and not wrt:  # every partial, assembled, then gradient descent
        opts.pop("steps")
        ds = net.derive_all(level="element", **opts)
    else:
        ds = [net.derive(wrt, level=level, cost=cost, **opts)] if wrt else \
            net.derive_all(cost=cost)
    _echo_derivations(ds, fmt, preset)


def _echo_derivations(ds, fmt, preset, text_notation=None) -> None:
    """derive's output: JSON records, the notes' LaTeX in ``preset``, or the text format (the
    index level's in ``text_notation``'s names when one was given: ESL's α, β)."""
    if fmt == "json":
        click.echo(json.dumps([d.to_dict() for d in ds], indent=2, ensure_ascii=False))
    elif fmt == "latex":
        click.echo("\n\n".join(to_latex(d, notation=preset.name) for d in ds))
    else:
        click.echo("\n\n".join(d.to_text(**_text_settings(), notation=text_notation)
                                 for d in ds))


def _derive_index(network, hidden, output_act, loss, wrt, of, cost, fmt, notation, timeout):
    """derive --level index: each parameter's general entry (or the one --wrt names);
    ``network`` a spec or file, or the network already loaded."""
    net = network
    if isinstance(network, str):
        net = load_network(network, hidden, output_act, loss, timeout=timeout,
                           on_overrun=_hard_stop(network, timeout))
        net.check()
    preset = notation_preset(notation or "esl")
    try:
        shape = index_shape(net)
    except NotIndexable as e:  # the levels as this command line spells them, not level='matrix'
        raise click.UsageError(f"{e.what} (use --level element or --level matrix)") from None
    if notation and preset.name == "esl" and shape.layers > 2:  # said, not silently switched
        click.echo(f"symgrad: warning: esl's α, β name one hidden layer's weights; this net has "
                   f"{shape.layers - 1}, written W⁽ˡ⁾, b⁽ˡ⁾, h⁽ˡ⁾ with ESL's R, δ, s and indices",
                   err=True)
    names = [wrt] if wrt else list(shape.names.values())
    ds = [net.derive(w, level="index", cost=cost, notation=preset.name, of=of or "loss")
          for w in names]
    _echo_derivations(ds, fmt, preset, preset.name if notation else None)


@cli.command("train")
@click.argument("network")
@network_options
@click.option("--penalty", type=float, default=0.0, show_default=True,
              help="λ of ½λΣ‖W‖² (a spec's; a network file sets its own).")
@click.option("--data", required=True,
              help="xor, digits, or an .npz file with arrays X and Y. digits trains a spec with "
                   "--output softmax --loss cross_entropy unless either is given.")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam"]), default="adam",
              show_default=True)
@click.option("--lr", type=float, default=None,
              help="[default: 0.1 sgd, 0.01 momentum, 0.001 adam; adam 0.05 for xor]")
@click.option("--epochs", type=int, default=None, help="[default: 1000 for xor, else 10]")
@click.option("--batch-size", type=int, default=None, help="[default: 32]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The seed of the first start (the data's split, the start, the shuffles).")
@click.option("--starts", type=int, default=None,
              help="Train from up to N starts (seeds SEED, SEED+1, …): keep the first that "
                   "classifies every training example right, else the lowest final loss "
                   "[default: 10 for xor, else 1].")
@click.option("--relu-bias", type=float, default=None,
              help="Where the biases of layers feeding ReLU units start, so that none starts "
                   "dead [default: 1 for xor, else 0].")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Save the parameters (.npz).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Draw the loss curve to this file (.png, .pdf, .svg); needs matplotlib: "
                   "pip install 'symgrad[plot]'.")
@click.option("--history", "history_out", type=click.Path(dir_okay=False), default=None,
              help="Save the loss of each epoch as JSON, for symgrad handout NET --history.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@file_timeout
@click.pass_context
def train(ctx, network, hidden, output_act, loss, penalty, data, optimizer, lr, epochs,
          batch_size, seed, starts, relu_bias, out, plot, history_out, quiet, timeout):
    """Train NETWORK on a data set; print its loss and accuracy. NETWORK is a spec such as
    64-32-10 (with --hidden/--output/--loss/--penalty) or a Python file that defines a Network
    named net (with one loss).

    \b
    Example:
      symgrad train 64-32-10 --hidden relu --output softmax --loss cross_entropy \\
                    --data digits --epochs 50 --lr 0.003 -o params.npz
      symgrad train net.py --data digits --epochs 50
    """
    # Everything is checked before the first step: the output path, the network's size (before
    # anything is allocated), the data file and every array in it (X_test too), then sg.train's
    # own arguments.
    head = None  # (the data set's output and loss, if they were used)
    if out is not None:
        _check_writable(out)
    if plot is not None:  # its file and matplotlib, before any work
        check_plot_path(plot, output_problem)
    if history_out is not None:  # (a .json: no .npz added, as _check_writable would)
        why = output_problem(history_out) if history_out.strip() else "the path is empty"
        if why:
            raise click.UsageError(f"--history {history_out}: {why}")
    _spec_only(ctx, network)
    if network.endswith(".py"):  # the loader of derive and handout, with its timeout
        net = load_network(network, timeout=timeout, on_overrun=_hard_stop(network, timeout))
        if net.several_losses:  # --data holds one Y; sg.train takes a dict of targets
            raise click.UsageError(
                f"{network}: symgrad train trains a network with one loss; this one has "
                f"{len(net.losses)} (on {', '.join(map(repr, net.outputs))}): use sg.train with "
                "a dict of targets")
        if len(net.inputs) > 1:  # --data holds one X
            raise click.UsageError(
                f"{network}: symgrad train trains a network with one input; this one has "
                f"{len(net.inputs)} ({', '.join(map(repr, net.inputs))}): use sg.train with a "
                "dict of inputs")
    else:
        # a classification data set's output and loss (DATA_HEADS) when the user chose neither
        # and a softmax has the units it needs; said in the defaults line below
        sizes, unset = parse_spec(network), click.core.ParameterSource.DEFAULT
        if data in DATA_HEADS and sizes[-1] > 1 and all(
                ctx.get_parameter_source(p) is unset for p in ("output_act", "loss")):
            head = DATA_HEADS[data]
            output_act, loss = head["output"], head["loss"]
        net = mlp(sizes, hidden=hidden, output=output_act, loss=loss, penalty=penalty)
    check_size(net, "float64", optimizer)
    d = load_data(data, net.loss, seed=seed)
    check_data(net, d, data)
    # options left unset take the data set's defaults (xor's: symgrad.run.train.DATA_DEFAULTS),
    # else the general ones; the line below says which came from the data set
    given = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "starts": starts,
             "relu_bias": relu_bias}
    own = train_defaults(data, optimizer)
    opts = {k: own[k] if v is None else v for k, v in given.items()}
    with warnings.catch_warnings(record=True) as caught:  # a run ending worse: one line, below
        warnings.simplefilter("always", TrainingWarning)
        params, history, info = train_starts(
            net, d["X"], d["Y"], opts["starts"], opts["relu_bias"], seed, optimizer=optimizer,
            lr=opts["lr"], epochs=opts["epochs"], batch_size=opts["batch_size"], quiet=quiet)
    for w in caught:
        if issubclass(w.category, TrainingWarning):
            click.echo(f"symgrad: warning: {w.message}", err=True)
        else:  # anyone else's warning, as Python would have shown it
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    used = [f"{head['output']} output with {head['loss']} loss"] if head else []
    if data in DATA_DEFAULTS and any(v is None for v in given.values()):
        words = {"epochs": f"{opts['epochs']} epochs", "lr": f"lr {opts['lr']:g}",
                 "batch_size": f"batch size {opts['batch_size']}",
                 "starts": f"up to {opts['starts']} starts",
                 "relu_bias": f"ReLU biases from {opts['relu_bias']:g}"}
        used += [words[k] for k, v in given.items() if v is None and
                 (k in DATA_DEFAULTS[data] and (k != "lr" or optimizer in DATA_DEFAULTS[data][k]))]
    if used:
        click.echo(f"{data}'s defaults: {', '.join(used)} (symgrad train --help)")
    if info["tried"] > 1 or opts["starts"] > 1:
        why = ("the first to classify every training example right" if info["learned"] else
               f"the lowest loss of {info['tried']}; none classified every example right")
        click.echo(f"start {info['start']} of up to {opts['starts']} kept (seed {info['seed']}): "
                   f"{why}")
    click.echo(f"{network} on {data}: {len(d['X'])} examples, {opts['epochs']} epochs, "
               f"loss {history[-1]:.6g}")
    for part, X, Y in (("train", d["X"], d["Y"]), ("test", d.get("X_test"), d.get("Y_test"))):
        acc = None if X is None else accuracy(net, params, X, Y)
        if acc is not None:
            click.echo(f"{part} accuracy {acc:.2%} ({len(X)} examples)")
    if out is not None:
        # the losses beside the parameters, so `symgrad handout NET --history FILE.npz` reads
        # the file train wrote (unless a parameter has their name)
        keep = None if "history" in params else history
        click.echo(f"parameters saved to {save_params(out, params, history=keep)}")
    if plot is not None:
        click.echo(f"loss curve saved to {plot_history(plot, history, f'{network} on {data}')}")
    if history_out is not None:  # (symgrad handout NET --history FILE draws it)
        click.echo(f"losses saved to {write_history(history_out, history)}")


def _check_writable(path: str) -> None:
    """Fail before training, not after: the file save_params will write (.npz added) must be
    writable (the same check save_params makes). An empty path is refused as handout's -o is
    (`-o ""` trained and saved nothing, exit 0)."""
    if not path.strip():
        raise click.UsageError("-o: the output path is empty")
    problem = output_problem(params_path(path))
    if problem is not None:
        raise click.BadParameter(f"{path}: {problem}", param_hint="-o")


def main() -> None:
    """The console script's entry (and ``python -m symgrad.cli``): the command, then the exit.

    A network file is the user's own code and may leave a thread running that is not a daemon
    (``threading.Thread(target=serve).start()``); Python's exit waits for every such thread, so
    ``symgrad derive net.py`` printed its derivation and then never ended. A thread cannot be made
    a daemon once started, nor stopped from outside, so when the command is done and such a
    thread is still alive, the process ends here without waiting for it: our streams flushed,
    then ``os._exit`` with the command's exit code. Otherwise the exit is Python's usual one
    (atexit handlers and all). Only this entry does it, never ``cli()`` itself, which tests and
    other programs call in their own process."""
    try:
        cli()
    except SystemExit as e:
        code = e.code
    else:  # (OneLineErrors.main always exits; this is for a cli() that returns)
        code = 0
    if not isinstance(code, int):  # sys.exit("message") or None, as Python itself reports them
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (symgrad … | head): nothing to keep
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
