"""The command line through click's CliRunner: every format, bad input, and the README commands."""
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SEED = "2*x1 + x2, pi*x2, -x1/x2"


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _readback(s):
    """sympify an entry from our own JSON (never user text) and restore symgrad's real symbols."""
    e = sp.sympify(s, locals=dict(sg.SYMPIFY_LOCALS))
    return e.xreplace({v: sp.Symbol(v.name, real=True) for v in e.free_symbols})


def test_jacobian_text():
    r = run("jacobian", SEED, "--wrt", "x1,x2")
    assert r.exit_code == 0
    assert r.output.strip() == "[[2, 1], [0, π], [−1/x₂, x₁/x₂²]]"


def test_jacobian_json_reads_back_exactly():
    r = run("jacobian", SEED, "--wrt", "x1,x2", "--format", "json")
    out = json.loads(r.output)
    assert out["shape"] == [3, 2]
    got = sp.Matrix([[_readback(e) for e in row] for row in out["jacobian"]])
    assert got == sg.jacobian(SEED, "x1 x2")


def test_json_reads_back_names_sympy_would_misread():
    r = run("jacobian", "beta*gamma + sigmoid(E*lambda)", "--wrt", "beta,E", "--format", "json")
    out = json.loads(r.output)
    got = sp.Matrix([[_readback(e) for e in row] for row in out["jacobian"]])
    assert got == sg.jacobian("beta*gamma + sigmoid(E*lambda)", "beta E")


def test_jacobian_json_with_steps():
    out = json.loads(run("jacobian", SEED, "--wrt", "x1 x2", "--format", "json", "--steps").output)
    rules = [s["rule"] for s in out["steps"]]
    assert rules[0] == "definition" and rules[-1] == "jacobian"
    assert out["steps"][-1]["shapes"] == [[3, 2]]


def test_jacobian_latex():
    r = run("jacobian", SEED, "--wrt", "x1,x2", "--format", "latex")
    assert r.output.strip() == (r"\left[\begin{matrix}2 & 1\\0 & \pi\\- \frac{1}{x_{2}} & "
                                r"\frac{x_{1}}{x_{2}^{2}}\end{matrix}\right]")
    steps = run("jacobian", SEED, "--wrt", "x1,x2", "--format", "latex", "--steps").output
    assert steps.startswith(r"\begin{aligned}") and r"3 \times 2" in steps


def test_jacobian_steps_text():
    out = run("jacobian", SEED, "--wrt", "x1,x2", "--steps").output
    assert "∂f₃/∂x₂ = x₁/x₂²" in out and "rows are the outputs of f" in out


CHAIN = ["chain", "--fn", "x1 - 2*x2 + x3/4", "--wrt", "x1,x2,x3",
         "--fn", "x1 + 2*x2, x2, -x1 + 3", "--wrt", "x1,x2"]


@pytest.mark.parametrize("fmt", ["text", "latex", "json"])
def test_chain_every_format(fmt):
    r = run(*CHAIN, "--format", fmt, "--steps")
    assert r.exit_code == 0
    if fmt == "json":
        out = json.loads(r.output)
        assert out["jacobian"] == [["3/4", "0"]] and out["shape"] == [1, 2]
    elif fmt == "latex":
        assert r"\frac{3}{4}" in r.output and r"1 \times 3 \cdot 3 \times 2" in r.output
    else:
        assert "1×3 · 3×2" in r.output and "both methods agree" in r.output


def test_every_wrt_name_in_its_function_is_still_accepted():
    """The check of issue 13 (a --wrt name absent from f is an error) takes what f does use:
    a name that only occurs inside a function, and the chain's --feed that leaves an output
    unused; the library keeps the zero column."""
    assert run("jacobian", "sigmoid(a*b)", "--wrt", "b,a").exit_code == 0
    r = run("chain", "--fn", "u**2", "--wrt", "u", "--fn", "x, x**2", "--wrt", "x",
            "--feed", "u=2", "--format", "json")
    assert json.loads(r.output)["jacobian"] == [["4*x**3"]]
    assert sg.jacobian("x**2", "x y") == sp.Matrix([[2 * sp.Symbol("x", real=True), 0]])


def test_chain_with_feed():
    r = run("chain", "--fn", "u**2", "--wrt", "u", "--fn", "x, y", "--wrt", "x,y",
            "--feed", "u=2", "--format", "json")
    assert json.loads(r.output)["jacobian"] == [["0", "2*y"]]


@pytest.mark.parametrize("args,fragment", [
    (["jacobian", "x.real", "--wrt", "x"], "column 2"),
    (["jacobian", "__import__('os')", "--wrt", "x"], "underscore"),
    (["jacobian", "x +", "--wrt", "x"], "end of input"),
    (["jacobian", "x", "--wrt", "x,,y"], ""),
    (["jacobian", "x"], "--wrt"),
    (["jacobian", "x", "--wrt", "x", "--format", "pdf"], "pdf"),
    (["chain", "--fn", "x", "--wrt", "x", "--fn", "y", "--wrt", "y", "--wrt", "z"], "one --wrt per"),
    (["chain", "--fn", "u", "--wrt", "u", "--fn", "x", "--wrt", "x", "--feed", "u"], "--feed"),
    (["chain", "--fn", "a + b", "--wrt", "a,b", "--fn", "x", "--wrt", "x"], "takes 2 inputs"),
    (["frobnicate"], "No such command"),
])
def test_bad_input_is_one_line_exit_2(args, fragment):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgrad: error:"), r.output
    assert fragment in lines[0]
    assert "Traceback" not in r.output


@pytest.mark.parametrize("command", ["jacobian", "chain", "hessian"])
def test_help_has_an_example(command):
    r = run(command, "--help")
    assert r.exit_code == 0 and "Example" in r.output


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^\$ (symgrad .+)$", text, flags=re.M)


@pytest.mark.slow  # (13 s: every command of the README run)
def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    cmds = _readme_commands()
    assert len(cmds) >= 3
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # commands name example files
    monkeypatch.chdir(tmp_path)  # and write their outputs (-o xor.pdf) here, not in the checkout
    for cmd in cmds:
        args = shlex.split(cmd)[1:]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, f"{cmd}\n{r.output}"


def test_cli_py_launcher_works_from_a_checkout():
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "jacobian", "x**2", "--wrt", "x"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[[2x]]"
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "jacobian", "x["],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


# -- symgrad derive: networks from specs and files ---------------------------------------------------
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_derive_element_by_position_name(tmp_path):
    for extra in ([], ["--naming", "position"]):
        r = run("derive", "2-2-1", "--level", "element", "--wrt", "W1_12", *extra)
        assert r.exit_code == 0 and "∂ℓ/∂W₁,₁₂ =" in r.output
    r = run("derive", "2-2-1", "--level", "element", "--naming", "notes", "--wrt", "w2")
    assert r.exit_code == 0 and "∂ℓ/∂w₂ =" in r.output
    r = run("derive", "12-11-1", "--level", "element", "--wrt", "W1_11,1")
    assert r.exit_code == 0 and "∂ℓ/∂W₁,₁₁,₁ =" in r.output
    r = run("derive", "12-11-1", "--level", "element", "--wrt", "W1_111")
    assert r.exit_code == 2 and "unknown weight 'W1_111'" in r.output


def test_derive_of_at_each_level():
    """--of loss is what the matrix level derives (taken); the element level honours both."""
    r = run("derive", "2-2-1", "--of", "loss", "--wrt", "b2")
    assert r.exit_code == 0 and r.output == run("derive", "2-2-1", "--wrt", "b2").output
    out = run("derive", "2-2-1", "--level", "element", "--of", "output", "--wrt", "w1").output
    assert out.startswith("∂ŷ/∂w₁, unit by unit") and "∂ℓ/∂w₁" not in out


def test_derive_takes_a_notation_as_handout_does(tmp_path):
    """derive had no --notation (handout had): the LaTeX of each preset, the default slides, a
    preset a network file registers, and one line for text or JSON, which have no notation."""
    slides = run("derive", "2-2-1", "--wrt", "W1", "--format", "latex").output
    assert run("derive", "2-2-1", "--wrt", "W1", "--format", "latex",
               "--notation", "slides").output == slides
    feature = run("derive", "2-2-1", "--wrt", "W1", "--format", "latex", "--notation", "feature")
    assert feature.exit_code == 0 and r"\dot{W}" in feature.output and r"\dot{W}" not in slides
    element = run("derive", "2-2-1", "--level", "element", "--wrt", "W1_21", "--format", "latex",
                  "--notation", "feature").output
    assert r"\dot{w}_{12}" in element  # W1_21 joins input 1 to unit 2: ẇ_12, as the notes
    from symgrad.printing.names import NOTATIONS
    path = _write(tmp_path, "net.py", "import symgrad as sg\nsg.register_notation("
                  "sg.Notation('mine', bold=False))\nnet = sg.mlp([2, 2, 1])\n")
    try:
        r = run("derive", path, "--wrt", "W1", "--format", "latex", "--notation", "mine")
        assert r.exit_code == 0 and r"\mathbf" not in r.output and r"\mathbf" in slides
    finally:
        NOTATIONS.pop("mine", None)


def test_derive_reads_a_network_file(tmp_path):
    path = _write(tmp_path, "net.py", "import symgrad as sg\nnet = sg.mlp([2, 3, 1])\n")
    r = run("derive", path, "--wrt", "W2", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)[0]["title"].endswith("W2")


@pytest.mark.parametrize("args,files,fragment", [
    (["derive", "2-2-1", "--wrt", "W9"], {}, "unknown parameter 'W9'"),
    (["derive", "2-2-1", "--level", "element", "--wrt", "w99"], {}, "unknown weight 'w99'"),
    (["derive", "2-x-1"], {}, "bad network spec '2-x-1'"),
    (["derive", "2-2-1", "--naming", "position"], {}, "--naming is for --level element"),
    (["derive", "{d}/missing.py"], {}, "no such network file"),
    (["derive", "{d}/nonet.py"], {"nonet.py": "x = 1\n"}, "defines no Network"),
    (["derive", "{d}/crash.py"], {"crash.py": "x = 1\nraise RuntimeError('boom')\n"},
     "crash.py, line 2: RuntimeError: boom"),
    (["derive", "{d}/syn.py"], {"syn.py": "x = 1\n\ndef (\n"}, "syn.py, line 3: SyntaxError"),
    (["derive", "{d}/noloss.py"], {"noloss.py": "import symgrad as sg\nnet = sg.Network()\n"
                                                "net.dense(net.input('x', 2), 1)\n"},
     "has no output and loss"),
    (["derive", "{d}/noparams.py"], {"noparams.py": "import symgrad as sg\nnet = sg.Network()\n"
                                                    "net.set_loss(net.act(net.input('x', 2), "
                                                    "'tanh'), 'mse')\n"}, "no parameters"),
])
def test_derive_errors_are_one_line_exit_2(tmp_path, args, files, fragment):
    for name, text in files.items():
        _write(tmp_path, name, text)
    r = CliRunner().invoke(cli, [a.format(d=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgrad: error:"), r.output
    assert fragment in lines[0] and "Traceback" not in r.output


def test_train_reads_a_network_file_as_derive_does(tmp_path):
    """symgrad train took only a spec: now a file defining a Network net, through the same
    loader (its own activations, loss and penalty; the data's labels formatted for its loss)."""
    path = _write(tmp_path, "net.py", "import symgrad as sg\nnet = sg.Network()\n"
                  "h = net.act(net.dense(net.input('in', 2), 3, W='A'), 'tanh')\n"
                  "net.set_loss(net.act(net.dense(h, 1), 'sigmoid'), 'bce', penalty='1/1000')\n")
    out = tmp_path / "p.npz"
    r = run("train", path, "--data", "xor", "--epochs", "300", "--lr", "0.05", "--batch-size",
            "4", "--quiet", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert f"{path} on xor: 4 examples, 300 epochs" in r.output
    assert "train accuracy 100.00% (4 examples)" in r.output
    assert set(sg.load_params(out)) == {"A", "b1", "W2", "b2"}
    labels = _write(tmp_path, "ce.py", "import symgrad as sg\n"
                    "net = sg.mlp([2, 2], output='softmax', loss='cross_entropy')\n")
    r = run("train", labels, "--data", "xor", "--epochs", "2", "--quiet")
    assert r.exit_code == 0 and "train accuracy" in r.output, r.output  # labels, not one-hot


def _run_lines(r):
    """A successful train run's own lines (loss, accuracies), without the defaults line."""
    assert r.exit_code == 0, r.output
    return [line for line in r.output.splitlines() if "defaults" not in line]


def test_a_data_sets_output_and_loss_apply_when_neither_is_given(monkeypatch):
    """The mechanism behind digits' softmax + cross_entropy (run/train.py's DATA_HEADS), on xor's
    four points (no scikit-learn, a second): a registered head is used when neither --output nor
    --loss is given and the output has ≥ 2 units, and the defaults line says so; either option
    given, or one output unit (xor's 2-2-1), keeps the general identity + mse."""
    from symgrad.run.train import DATA_HEADS
    assert DATA_HEADS["digits"] == {"output": "softmax", "loss": "cross_entropy"}
    assert "xor" not in DATA_HEADS  # (its recipe was measured with identity + mse)
    monkeypatch.setitem(DATA_HEADS, "xor", {"output": "softmax", "loss": "cross_entropy"})
    opts = ["--data", "xor", "--epochs", "3", "--lr", "0.05", "--batch-size", "4", "--starts",
            "1", "--relu-bias", "1", "--quiet"]  # (every option given: the head alone is said)
    r = run("train", "2-2-2", *opts)
    line = "xor's defaults: softmax output with cross_entropy loss (symgrad train --help)"
    assert r.output.splitlines()[0] == line
    assert _run_lines(r) == _run_lines(run("train", "2-2-2", *opts, "--output", "softmax",
                                           "--loss", "cross_entropy"))
    # --loss given alone: the output is the general identity, which cross_entropy refuses
    given = CliRunner().invoke(cli, ["train", "2-2-2", *opts, "--loss", "cross_entropy"])
    assert given.exit_code == 2 and "cross_entropy needs softmax outputs" in given.output
    one = run("train", "2-2-1", *opts)
    assert "defaults" not in one.output
    assert _run_lines(one) == _run_lines(run("train", "2-2-1", *opts, "--loss", "mse"))


@pytest.mark.slow  # (6 s: scikit-learn's import and three digits runs)
def test_train_on_digits_defaults_to_softmax_cross_entropy_and_says_so():
    """`symgrad train 64-32-10 --data digits` trained identity + mse, a regression (71 % test
    accuracy after 5 epochs) without a word; a classification set now gets softmax +
    cross_entropy when neither --output nor --loss is given, and the defaults line says so. Either
    option given keeps the general defaults for the other, as before; xor's 2-2-1 keeps its own."""
    pytest.importorskip("sklearn", reason="the digits data set needs scikit-learn")
    tail = _run_lines
    base = ["train", "64-32-10", "--data", "digits", "--epochs", "1", "--batch-size", "2000",
            "--quiet"]  # (one step: what is trained, not how well)
    r = run(*base)
    line = "digits's defaults: softmax output with cross_entropy loss (symgrad train --help)"
    assert r.output.splitlines()[0] == line
    assert tail(r) == tail(run(*base, "--output", "softmax", "--loss", "cross_entropy"))
    mse = run(*base, "--loss", "mse")  # identity + mse, the general defaults
    assert "defaults" not in mse.output and tail(mse) != tail(r)
    assert "softmax output" not in run("train", "2-2-1", "--data", "xor", "--epochs", "2",
                                       "--quiet").output


def test_train_checks_the_output_path_before_training(tmp_path):
    r = CliRunner().invoke(cli, ["train", "2-2-1", "--data", "xor", "--epochs", "100000",
                                 "-o", str(tmp_path / "no" / "such" / "x.npz")])
    assert r.exit_code == 2 and "no such directory" in r.output
    assert "accuracy" not in r.output  # it failed before training


def test_a_spec_is_ascii_digits_only():
    """symgrad derive ٢-٢-١ (Arabic-Indic digits) was accepted as 2-2-1."""
    r = CliRunner().invoke(cli, ["derive", "٢-٢-١"])
    assert r.exit_code == 2 and "bad network spec" in r.output and "Traceback" not in r.output


def test_an_expression_may_begin_with_a_minus_and_bare_symgrad_prints_its_help():
    """'symgrad jacobian "-x"' was refused as an unknown option; bare 'symgrad' printed the whole
    help as an error."""
    r = CliRunner().invoke(cli, ["jacobian", "-x", "--wrt", "x"])
    assert r.exit_code == 0 and r.output.strip() == "[[−1]]"
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "symgrad.cli"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Usage: symgrad") and not done.stderr


def test_json_reads_back_a_variable_named_like_a_symgrad_function():
    """A variable named step read back as symgrad's function step."""
    import sympy as sp
    r = CliRunner().invoke(cli, ["jacobian", "step**2*x", "--wrt", "step,x", "--format", "json"])
    assert r.exit_code == 0, r.output
    row = [sp.sympify(e, locals=sg.SYMPIFY_LOCALS) for e in json.loads(r.output)["jacobian"][0]]
    step, x = sp.Symbol("step"), sp.Symbol("x")
    assert row == [2 * step * x, step ** 2]


def test_train_checkpoint_carries_its_losses_for_the_handout(tmp_path):
    """Issue 13: `train -o xor.npz` then `handout --history xor.npz` failed with "no array
    'history'": the checkpoint now holds the losses, and load_params still gives the parameters."""
    import numpy as np
    out = tmp_path / "xor.npz"
    r = run("train", "2-2-1", "--data", "xor", "--epochs", "20", "--quiet", "-o", str(out))
    assert r.exit_code == 0, r.output
    with np.load(out) as z:
        assert len(z["history"]) == 20
    assert set(sg.load_params(out)) == {"W1", "b1", "W2", "b2"}
    r = run("handout", "2-2-1", "--history", str(out), "-o", str(tmp_path / "x.tex"))
    assert r.exit_code == 0, r.output
    assert "Training" in (tmp_path / "x.tex").read_text()


def test_a_parameter_named_history_is_still_a_parameter(tmp_path):
    path = _write(tmp_path, "net.py", "import symgrad as sg\nnet = sg.Network()\n"
                  "h = net.act(net.dense(net.input('in', 2), 2, W='history'), 'tanh')\n"
                  "net.set_loss(net.dense(h, 1), 'mse')\n")
    out = tmp_path / "p.npz"
    r = run("train", path, "--data", "xor", "--epochs", "3", "--quiet", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "history" in sg.load_params(out)


@pytest.mark.parametrize("name", ["gone.npz", "gone.json"])
def test_a_missing_history_file_is_one_line_naming_it(tmp_path, name):
    r = run("handout", "2-2-1", "--history", str(tmp_path / name), "-o", str(tmp_path / "x.tex"))
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"symgrad: error: --history {tmp_path / name}: "
                                             "no such file"], r.output
    assert "Errno" not in r.output and "Traceback" not in r.output


def test_ascii_power_rule_reads_as_a_power():
    """Issue 13: --ascii printed the power rule as "(zp)' = p zp^-1" (each superscript glyph
    read as its letter); an exponent is now written with ^."""
    r = run("derive", "2-2-1", "--level", "element", "--wrt", "w1", "--steps", "full", "--ascii")
    assert r.exit_code == 0, r.output
    assert "(z^p)' = p z^(p-1)" in r.output and "zp" not in r.output
    from symgrad.printing.names import ascii_words
    assert ascii_words("X⁻¹, Aᵏ, x², uᵖ⁻¹") == "X^-1, A^k, x^2, u^(p-1)"


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    """Without scikit-learn the digits set's one line names the README's extra to install."""
    for mod in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, mod, None)  # (import of a None entry raises ImportError)
    r = run("train", "2-2-10", "--data", "digits", "--epochs", "1")
    assert r.exit_code == 2 and "pip install 'symgrad[examples]'" in r.output
    assert len(r.output.strip().splitlines()) == 1
