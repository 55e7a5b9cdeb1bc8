"""Start-up (issue 15): `symgrad --help`, each command's --help and `import symgrad` import no SymPy
and no numpy; the facade's names load on first use and are the same names as before.

Behavioural checks, in a fresh interpreter each (sys.modules of this one has everything loaded);
the times are measured by bench/startup.py, never asserted here.
"""
from __future__ import annotations

import json
import subprocess
import sys

import symgrad
from symgrad.cli import cli

HEAVY = ("sympy", "numpy", "mpmath")


def _fresh(code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


REPORT = ("import json, sys\n"
          "heavy = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n" % (HEAVY,))


def test_help_of_every_command_imports_no_sympy():
    commands = sorted(cli.commands)
    assert {"jacobian", "derive", "train", "handout"} <= set(commands)
    runs = [[]] + [["--help"], ["-h"], ["--version"]] + [[c, "--help"] for c in commands]
    out = _fresh(
        "import contextlib, io, json, sys\n"
        "from symgrad.cli import main\n"
        f"runs = {runs!r}\n"
        "helps = []\n"
        "for args in runs:\n"
        "    sys.argv = ['symgrad', *args]\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try:\n"
        "            main()\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (args, e.code)\n"
        "    helps.append(buf.getvalue())\n"
        + REPORT.split("\n", 1)[1] +
        "print(json.dumps({'heavy': heavy, 'helps': helps}))\n")
    assert out["heavy"] == []
    for args, text in zip(runs, out["helps"]):
        if args == ["--version"]:
            assert symgrad.__version__ in text
        else:
            assert "Usage: symgrad" in text, args
    assert "symgrad derive [OPTIONS] NETWORK" in out["helps"][runs.index(["derive", "--help"])]


def test_a_usage_error_imports_no_sympy_and_a_command_loads_the_engine():
    """A command's body runs with the engine loaded (its result printed); a usage error stops
    before it."""
    out = _fresh(
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from symgrad.cli import cli\n"
        "bad = CliRunner().invoke(cli, ['jacobian', 'x**2'])\n"
        "before = 'sympy' in sys.modules\n"
        "good = CliRunner().invoke(cli, ['jacobian', 'x**2', '--wrt', 'x'])\n"
        "print(json.dumps({'bad': [bad.exit_code, bad.output], 'before': before,\n"
        "                  'good': [good.exit_code, good.output], 'after': 'sympy' in sys.modules}))\n")
    assert out["bad"][0] == 2 and "--wrt" in out["bad"][1]
    assert out["before"] is False
    assert out["good"] == [0, "[[2x]]\n"] and out["after"] is True


def test_import_symgrad_alone_imports_no_sympy_and_names_load_on_first_use():
    out = _fresh(REPORT.replace("heavy =", "import symgrad\nheavy =") +
                 "import symgrad as sg\n"
                 "net = sg.mlp([2, 2, 1])\n"
                 "names = sorted(n for n in dir(sg) if not n.startswith('_'))\n"
                 "print(json.dumps({'heavy': heavy, 'names': names, 'all': sg.__all__,\n"
                 "                  'sympy': 'sympy' in sys.modules,\n"
                 "                  'net': type(net).__name__}))\n")
    assert out["heavy"] == []
    assert out["sympy"] is True and out["net"] == "Network"
    # every documented name, the submodules the facade imports, and nothing else public
    subpackages = {"compile", "core", "derive", "graph", "handouts", "network", "printing", "run"}
    assert set(out["names"]) == set(out["all"]) | subpackages


def test_every_documented_name_resolves_in_a_fresh_interpreter():
    out = _fresh("import json\n"
                 "from symgrad import *\n"
                 "import symgrad\n"
                 "print(json.dumps({n: type(globals()[n]).__name__ for n in symgrad.__all__}))\n")
    assert set(out) == set(symgrad.__all__)
    assert out["mlp"] == "function" and out["Network"] == "type"


def test_hessian_before_any_other_name():
    """sg.hessian is a def of the package itself (no __getattr__): it loads the facade first."""
    out = _fresh("import json, symgrad\n"
                 "d = symgrad.hessian('x**2*y', 'x y')\n"
                 "print(json.dumps(str(d.result)))\n")
    assert out == "Matrix([[2*y, 2*x], [2*x, 0]])"


def test_a_missing_name_is_an_attribute_error():
    """A dunder probe (doctest's, inspect's) loads nothing; any other missing name loads the
    facade first, as it may be one of its names."""
    out = _fresh("import json, sys, symgrad\n"
                 "errors = []\n"
                 "for name in ('__wrapped__', 'no_such_name'):\n"
                 "    try:\n"
                 "        getattr(symgrad, name)\n"
                 "    except AttributeError as e:\n"
                 "        errors.append([str(e), 'sympy' in sys.modules])\n"
                 "print(json.dumps(errors))\n")
    assert out == [["module 'symgrad' has no attribute '__wrapped__'", False],
                   ["module 'symgrad' has no attribute 'no_such_name'", True]]
