"""The ``symgrad`` command line: a thin layer, each command one library call and a printer.

Where it sits: the outermost face. Bad input of any kind ends in one line on stderr and exit code 2,
never a traceback.
"""
from __future__ import annotations

import json
import sys

import click
import sympy as sp

from . import calculus
from .derivation import Derivation, DerivationLatexPrinter, SympifyPrinter, TextPrinter
from .functions import MissingRuleError
from .parse import ParseError

FORMATS = click.Choice(["text", "latex", "json"])
# Errors that mean "the input is wrong": reported in one line, exit code 2.
INPUT_ERRORS = (ParseError, ValueError, TypeError, MissingRuleError, KeyError, OSError)


class OneLineErrors(click.Group):
    """A click group whose every error, click's own included, is one line on stderr and exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name or "symgrad", complete_var, standalone_mode=False,
                              **extra)
        except click.exceptions.Abort:
            click.echo("symgrad: aborted", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo(f"symgrad: error: {e.format_message()}", err=True)
            sys.exit(2)
        except INPUT_ERRORS as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            click.echo(f"symgrad: error: {msg}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="symgrad")
def cli():
    """symgrad: symbolic Jacobians and gradients, derived step by step.

    \b
    Example:
      symgrad jacobian "2*x1 + x2, pi*x2, -x1/x2" --wrt x1,x2 --steps
    """


def _emit(d: Derivation, fmt: str, steps: bool, key: str) -> None:
    """Print a derivation's result (or all its steps) in the chosen format."""
    M = d.result
    if fmt == "json":
        p = SympifyPrinter()
        out = {key: [[p.doprint(e) for e in M.row(i)] for i in range(M.rows)],
               "shape": [M.rows, M.cols]}
        if steps:
            out["steps"] = d.to_dict()["steps"]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    elif fmt == "latex":
        click.echo(d.to_latex() if steps else DerivationLatexPrinter().doprint(M))
    else:
        click.echo(d.to_text() if steps else TextPrinter().doprint(M))


@cli.command()
@click.argument("expression")
@click.option("--wrt", required=True, help="Variables, comma- or space-separated: x1,x2")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.option("--steps", is_flag=True, help="Print every step of the derivation.")
def jacobian(expression, wrt, fmt, steps):
    """The Jacobian of EXPRESSION (components separated by commas).

    Rows are the outputs, columns the variables given with --wrt.

    \b
    Example:
      symgrad jacobian "2*x1 + x2, pi*x2, -x1/x2" --wrt x1,x2
      symgrad jacobian "2*a*x + b/y" --wrt a,b --format json
    """
    _emit(calculus.derive_jacobian(expression, wrt), fmt, steps, "jacobian")


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
@click.option("--steps", is_flag=True, help="Print both methods step by step.")
def chain(fns, wrts, feeds, fmt, steps):
    """The Jacobian of f∘g(∘h…) by substitution and by the chain rule, checked to agree.

    \b
    Example:
      symgrad chain --fn "x1 - 2*x2 + x3/4" --wrt x1,x2,x3 \\
                    --fn "x1 + 2*x2, x2, -x1 + 3" --wrt x1,x2 --steps
    """
    if len(fns) != len(wrts):
        raise click.UsageError(f"give one --wrt per --fn ({len(fns)} --fn, {len(wrts)} --wrt)")
    if feeds and len(feeds) != len(fns) - 1:
        raise click.UsageError(f"give one --feed per junction ({len(fns) - 1}), got {len(feeds)}")
    feed = [_parse_feed(f) for f in feeds] if feeds else None
    names = "fghkpq"
    d = calculus.chain(*[(f, w, names[i] if i < 6 else f"f{i}")
                         for i, (f, w) in enumerate(zip(fns, wrts))], feed=feed)
    _emit(d, fmt, steps, "jacobian")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
