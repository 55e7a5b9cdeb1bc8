"""Every math block symgrad writes for a browser renders in KaTeX and in MathJax: each `$$…$$` and
`$…$` of every Markdown handout it can make, and every ``_repr_latex_`` (Jupyter's). Both run
under node (tests/js/render.js, one process for the session: the ``renderers`` fixture in
conftest.py); KaTeX with throwOnError, MathJax with its plain configuration less noundefined, so
an unknown macro or a TeX error is an error, and text MathJax would show as typed (a macro in
\\text{}, TeX's quotes, braces) is one too. Skipped without node or `npm ci --prefix tests/js`."""
import re
import runpy
import shutil
from pathlib import Path

import pytest
import sympy as sp

import symgrad as sg
from symgrad.handouts.pdf import compile_pdf
from symgrad.handouts.render import ARTICLE_PREAMBLE
from symgrad.handouts.worksheet import problem, read_problems
from symgrad.core.scripts import ends_in_script, ends_in_superscript
from symgrad.printing.latex import notebook_latex
from symgrad.printing.names import portable_math
from test_every_op import BUILDERS

ROOT = Path(__file__).resolve().parents[1]


# a fenced code block (the network's text diagram): shown as typed, no math in it (KaTeX's
# auto-render and MathJax skip <pre> and <code>)
FENCED = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)


def markdown_math(md: str) -> list:
    """(tex, display) for every math block of a Markdown document, as a Markdown renderer with
    math finds them: $$…$$ displays, then $…$ inline, a \\$ being no delimiter; none in a fenced
    code block."""
    md = FENCED.sub("", md)
    out = [(m.group(1), True) for m in re.finditer(r"\$\$(.*?)\$\$", md, re.S)]
    prose = re.sub(r"\$\$.*?\$\$", "", md, flags=re.S)
    out += [(m.group(1), False)
            for m in re.finditer(r"(?<!\\)\$((?:[^$\\]|\\.)+)\$", prose)]
    rest = re.sub(r"(?<!\\)\$((?:[^$\\]|\\.)+)\$", "", prose).replace(r"\$", "")
    assert "$" not in rest, "an unpaired $: " + rest[rest.index("$") - 80:rest.index("$") + 80]
    return out


def repr_math(obj) -> tuple:
    """The math of a ``_repr_latex_`` ("$…$", as Jupyter reads it) as an inline block."""
    s = obj._repr_latex_()
    assert s.startswith("$") and s.endswith("$") and not s.startswith("$$"), s[:80]
    return s[1:-1], False


def report(failures) -> str:
    """One paragraph per refusal: where, which renderer, its message, the start of the math."""
    return "\n\n".join(f"{where}: {name}: {msg}\n    {tex[:300]!r}"
                       for where, tex, name, msg in failures[:20]) + \
        (f"\n\n… and {len(failures) - 20} more" if len(failures) > 20 else "")


# -- the harness itself: it accepts TeX and refuses what each renderer refuses --------------------
def test_the_harness_accepts_and_refuses(renderers):
    ok, unknown, double, text_macro, quotes, braces, array_at = renderers.check([
        (r"\mathbf{W}^{(1)\top} \odot \frac{1}{2}", False), r"\undefinedmacro", "a^{b}^{c}",
        r"\text{a\,b}", r"\text{``a''}", r"\text{{[}a{]}}",
        r"\begin{array}{@{}c@{\qquad}c@{}} a & b \end{array}"])
    assert ok == {"katex": None, "mathjax": None, "katex_warnings": []}
    assert "Undefined control sequence" in unknown["katex"]
    assert "Undefined control sequence" in unknown["mathjax"]  # not a red \undefinedmacro
    assert "Double superscript" in double["katex"] and "Double exponent" in double["mathjax"]
    # text MathJax would print as typed, which KaTeX renders
    for r in (text_macro, quotes, braces):
        assert r["katex"] is None and r["mathjax"].startswith("text shown as typed"), r
    assert "Unknown column alignment" in array_at["katex"] and array_at["mathjax"] is None


def test_markdown_math_finds_every_block():
    md = "Text $a$ and \\$5 and $b_{1}$.\n\n$$\n\\begin{aligned}x &= 1\\end{aligned}\n$$\n"
    assert markdown_math(md + "````text\nb$^~{ ```\n````\n") == markdown_math(md)
    assert markdown_math(md + "~~~~text\nb$^~{ ~~~\n~~~~\n") == markdown_math(md)
    assert markdown_math(md) == [("\n\\begin{aligned}x &= 1\\end{aligned}\n", True),
                                 ("a", False), ("b_{1}", False)]
    with pytest.raises(AssertionError, match="unpaired"):
        markdown_math("one $a$ and $b")


# -- each fix, with the math that failed ----------------------------------------------------------
F = ("x1 - 2*x2 + x3/4", "x1 x2 x3", "f")
G = ("x1 + 2*x2, x2, -x1 + 3", "x1 x2", "g")


def test_two_methods_side_by_side_render(renderers):
    """f∘g's two methods were an array {@{}c@{\\qquad}c@{}}: KaTeX "Unknown column alignment: @"
    (MathJax and pdflatex took it); now {cc} with a \\quad, in the notebook and the handout."""
    d = sg.chain(F, G)
    blocks = [repr_math(d)] + markdown_math(sg.handout(d, fmt="markdown"))
    assert any(r"\begin{array}{cc}" in t for t, _ in blocks)
    assert not (f := renderers.failures(blocks, "f∘g")), report(f)


def pdflatex_accepts(blocks, tmp_path):
    """The same math through real pdflatex (a TeXError names TeX's message and line), where TeX
    is installed: a fix for the browsers must not break the PDFs."""
    if shutil.which("pdflatex") is None:
        return
    body = "\n\n".join((r"\[%s\]" if display else "$%s$") % tex for tex, display in blocks)
    compile_pdf(ARTICLE_PREAMBLE + "\\begin{document}\n" + body + "\n\\end{document}\n",
                tmp_path / "math.pdf", engine="pdflatex", keep_failed=False)


def test_no_double_superscripts(renderers, tmp_path):
    """A name with a superscript raised again: the penalty's Σ W1^∘2 printed
    \\mathbf{W}^{(1)}^{\\circ {2}}, X⁻¹ of a matrix named W1 \\mathbf{W}^{(1)}^{-1}; pdflatex,
    KaTeX and MathJax all refuse a double superscript. Now (𝐖^{(1)})^{∘2}."""
    net = sg.mlp([2, 2, 1], penalty=0.01)
    blocks = [(sg.to_latex(net.backprop(), notation=n), False) for n in ("slides", "feature")]
    assert r"\left(\mathbf{W}^{(1)}\right)^{\circ {2}}" in blocks[0][0]
    assert r"\left(\dot{W}^{\top}\right)^{\circ {2}}" in blocks[1][0]
    for f, decl in [("logdet(W1)", dict(matrices="W1")), ("tr(inv(W1)*A)", dict(matrices="W1 A")),
                    ("det(W2)", dict(matrices="W2"))]:
        blocks.append(repr_math(sg.grad(f, f[f.index("W"):][:2], **decl)))
    assert r"\left(\mathbf{W}^{(1)}\right)^{-\top}" in blocks[2][0]
    assert not (f := renderers.failures(blocks, "superscripts")), report(f)
    pdflatex_accepts(blocks, tmp_path)


@pytest.mark.parametrize("tex, sup, sub", [
    (r"\mathbf{W}^{(1)}", True, False), (r"\dot{W}^{\top}", True, False), ("x^2", True, False),
    (r"x^\top", True, False), (r"a^{b}_{c}", True, True), (r"\mathbf{z}^{(1)}_{2}", True, True),
    (r"\hat{y}", False, False), ("x", False, False), (r"\mathbf{g}_{\mathbf{h}^{(1)}}", False, True),
    (r"\left(a^{2}\right)", False, False), ("a_{c}", False, True), (r"a_\alpha", False, True),
    (r"\text{a\^{}\}}", False, False), (r"x\^2", False, False), ("", False, False)])
def test_ends_in_script(tex, sup, sub):
    assert ends_in_superscript(tex) is sup and ends_in_script(tex, "^") is sup
    assert ends_in_script(tex, "_") is sub


def test_power_rules_in_words_are_one_superscript(renderers, tmp_path):
    """The differential rules d(uᵖ) = p uᵖ⁻¹ du and d(X^∘p) = p X^∘(p − 1) ⊙ dX in a step's words
    printed a$^{p} ^{-} ^{1}$ (a double superscript: KaTeX and MathJax refuse it) and
    $X$\\textasciicircum{}$\\circ p$ (MathJax shows the macro as typed)."""
    ds = [sg.grad("norm2(x)", "x", vectors="x"), sg.grad("sum(x .^ 3)", "x", vectors="x")]
    tex = "".join(d.to_latex() for d in ds)
    # (the matrix calculus now gives each rule's LaTeX itself: mcalc.RULE_LATEX)
    assert r"$\mathrm{d}(u^{p}) = p\,u^{p-1}\,\mathrm{d}u$" in tex
    assert r"p\,\mathbf{X}^{\circ (p-1)} \odot \mathrm{d}\mathbf{X}$" in tex
    assert "textasciicircum" not in tex
    blocks = [repr_math(d) for d in ds] + markdown_math(sg.handout(ds, fmt="markdown"))
    assert not (f := renderers.failures(blocks, "power rules")), report(f)
    pdflatex_accepts(blocks[:2], tmp_path)


def hostile_nets():
    """The hostile-names example, and names with Markdown's and TeX's quote characters."""
    nets = [runpy.run_path(str(ROOT / "examples" / "handouts" / "hostile.py"))["net"]]
    net = sg.Network()
    x = net.input('say "hi"', 2)
    h = net.act(net.dense(x, 2, W="`W`"), "tanh", name="[a](javascript:alert(3))")
    net.set_loss(net.dense(h, 1, b="b ~ 1 | 2 < 3"), "mse")
    return nets + [net]


def test_notebook_latex_of_hostile_names(renderers, tmp_path):
    """_repr_latex_ of every parameter of nets with names full of TeX specials: MathJax (Jupyter's
    renderer) showed their escapes as typed (\\text{\\textit{a\\_b}} reads "\\textit{a\\_b}");
    now each escape leaves the text group for its math glyph, \\text{a}{\\_}\\text{b}."""
    blocks = []
    for net in hostile_nets():
        for p in net.parameters:
            blocks.append(repr_math(net.derive(p)))
    assert any(r"{\backslash}\textit{input}" in t or r"{\backslash}\textbf{input}" in t
               for t, _ in blocks)
    assert not (f := renderers.failures(blocks, "hostile _repr_latex_")), report(f)
    pdflatex_accepts(blocks, tmp_path)


def sequence_nets(names):
    """Attention (causal, a query that is also the key) and conv1d (same and causal), every node
    and parameter named from ``names`` (six of them)."""
    a, b, c, d, e, f = names
    net = sg.Network()
    x = net.input("x", shape=(3, 2))
    k = net.dense(x, 2, W=a, name=b)
    v = net.dense(x, 2, name=c)
    att = net.attention(net.dense(x, 2), k, v, causal=True)
    self_ = net.attention(k, k, v)
    h = net.act(net.conv1d(net.add(att, self_), 2, 3, W=d, name=e), "tanh", name=f)
    h = net.act(net.conv1d(h, 2, 2, padding="causal"), "tanh")
    net.set_loss(net.dense(h, 2), "mse")
    return net


HOSTILE_SEQ = [r"\input{/etc/passwd}", "k^^M", "v_&%#", "W}{", "z$x", "h~\\"]


def test_sequence_nodes_print_names_escaped_and_in_notation(renderers, tmp_path):
    """Attention's [K]_{1:T}, e_τ qᵀ, a_tτ I and conv1d's W_{τ−t+p} were LaTeX templates with the
    nodes' names put in raw: a node named \\input{/etc/passwd} was read by pdflatex (and "k^^M"
    is TeX's notation for a character code), and z3 printed "z3", not 𝐳^{(3)}. Conv1d's
    Σ_u W_u h_{t+u−p} stacked a second script on a printed name: 𝐖^{(1)}_{u}^{⊤} and
    𝐠_{𝐳^{(1)}}_{τ−u+p}, which pdflatex, KaTeX and MathJax refuse."""
    plain, hostile = sequence_nets(["Wk", "k", "v", "K", "c", "hc"]), sequence_nets(HOSTILE_SEQ)
    texs = {}
    for tag, net in (("plain", plain), ("hostile", hostile)):
        texs[tag] = [net.derive(p).to_latex() for p in net.parameters] + \
            [net.backprop().to_latex()]
    joined = "\n".join(texs["plain"])
    for shown in (r"\frac{1}{\sqrt{2}} \, \left(\left[\mathbf{k}\right]_{1:T} + e_t "
                  r"\mathbf{k}^{\top}\right)",  # (the scale 1/√d_k in front, one form: issue 13)
                  # generated names by their roles, as the handout writes them: the query z3 is
                  # q⁽¹⁾, the weights a5 a⁽¹⁾, the causal conv's W5 W⁽²⁾ (test_derive_names)
                  r"\frac{1}{\sqrt{2}} \, e_{\tau} \mathbf{q}^{(1)\top}", r"\mathbf{a}^{(1)}_{t\tau} I",
                  r"\mathbf{W}^{(2)}_{\tau - t + 1}"):
        assert shown in joined, shown
    hostile_tex = "\n".join(texs["hostile"])
    assert r"\input{" not in hostile_tex and "^^" not in hostile_tex, \
        re.search(r".{80}(\\input\{|\^\^).{40}", hostile_tex).group(0)
    # to_latex is for pdflatex; a browser gets the notebook's and the Markdown handout's forms
    # (the plain net's blocks have the hostile one's structure: not rendered twice)
    blocks = [(portable_math(t), True) for t in texs["hostile"]]
    blocks += markdown_math(sg.handout(plain, fmt="markdown", level="matrix"))
    assert not (f := renderers.failures(blocks, "sequence nodes")), report(f)
    pdflatex_accepts([(t, True) for tag in texs for t in texs[tag]], tmp_path)


# -- every Markdown handout symgrad can make, and a sample of notebook outputs --------------------
EXAMPLES = ["xor", "mnist", "logistic", "feature", "hostile", "gated", "lstm", "attention", "cnn",
            "multitask"]
# name: sg.handout's arguments; 2-2-1 and 2-3-2 at each level, with every built-in activation
# and loss between them, a penalty, the feature notation and the full verbosity
SPECS = {
    "2-2-1 matrix relu mse": ("2-2-1", dict(level="matrix")),
    "2-2-1 element sigmoid bce": ("2-2-1", dict(level="element", hidden="sigmoid",
                                               output="sigmoid", loss="bce")),
    "2-2-1 both tanh mse full": ("2-2-1", dict(level="both", hidden="tanh", verbosity="full")),
    "2-2-1 element softplus": ("2-2-1", dict(level="element", hidden="softplus",
                                            output="sigmoid", loss="mse")),
    "2-3-2 both leaky_relu softmax cross_entropy": ("2-3-2", dict(
        level="both", hidden="leaky_relu", output="softmax", loss="cross_entropy")),
    "2-2-1 both feature notation": ("2-2-1", dict(level="both", notation="feature")),
    "3-2 matrix sigmoid bce brief": ("3-2", dict(output="sigmoid", loss="bce",
                                                verbosity="brief")),
}
# one line per problem, as a worksheet has them: every differential rule, the trace trick with a
# vector and a matrix, Jacobians through vec, Hessians
PROBLEMS = [
    "grad \"x'*A*x\" --wrt x --vector x --matrix A",
    "grad \"a'*X*b\" --wrt X --vector a,b --matrix X",
    "grad \"tr(A*X*B)\" --wrt X --matrix A,X,B",
    "grad \"det(X)\" --wrt X --matrix X",
    "grad \"logdet(W1) + tr(inv(W1)*A)\" --wrt W1 --matrix W1,A",
    "grad \"norm2(x) + norm1(x) + logsumexp(x)\" --wrt x --vector x",
    "grad \"x'*S*x\" --wrt x --vector x --symmetric S",
    "grad \"-y'*log(softmax(W*x))\" --wrt W --vector x,y --matrix W",
    "grad \"sum(exp(x) + log(x) + sqrt(x) + abs(x))\" --wrt x --vector x",
    "grad \"sum(sin(x) .* cos(x) + tanh(x) ./ (1 + sigmoid(x)))\" --wrt x --vector x",
    "grad \"sum(relu(W1*x) + softplus(W1*x)) + sum(W1 .^ 2)\" --wrt W1 --vector x --matrix W1",
    "grad \"sum(x .^ 3) + ones(3)'*x + tr(diag(x)*A)\" --wrt x --vector x --matrix A",
    "derivative \"A*x\" --wrt x --vector x --matrix A",
    "derivative \"x .* y\" --wrt x --vector x,y",
    "derivative \"W*x\" --wrt W --vector x --matrix W",
    "derivative \"A*X*B\" --wrt X --matrix A,X,B",
    "derivative \"inv(X)\" --wrt X --matrix X",
    "derivative \"tanh(A*x + b)\" --wrt x --vector x,b --matrix A",
    "derivative \"softmax(x)\" --wrt x --vector x",
    "hessian \"norm2(X*w - y)^2 + lam*w'*w\" --wrt w --vector w,y --matrix X",
    "hessian \"sum(log(1 + exp(-y .* (X*w))))\" --wrt w --vector w,y --matrix X",
    "hessian \"tr(X'*A*X)\" --wrt X --matrix X,A",
    "hessian \"logsumexp(x)\" --wrt x --vector x",
]


# tests/test_every_op.py's small nets of the ops no example above has (or has only in a big net),
# at both levels: the ones that take under about a second each (layer norm, pooling and the
# 4 x 4 convolution take 3-5 s; the examples cover them)
OPS = [("add", 0), ("mul", 0), ("concat", 0), ("dense_transposed", 0), ("softmax", 0),
       ("embedding", 0), ("conv2d", 1), ("conv1d", 0), ("conv1d", 1), ("scores", 1)]


def function_derivations():
    """sg.derive_jacobian, derive_gradient, chain, derive_vec_jacobian, derive_matrix_gradient."""
    W = sp.Matrix(2, 2, sp.symbols("w1:5", real=True))
    return [sg.derive_jacobian("2*x1 + x2, pi*x2, -x1/x2", "x1 x2"),
            sg.derive_gradient("2*a*x + b/y + sigmoid(a*b)", "a, b"),
            sg.chain(F, G),
            sg.chain(("tanh(u + v)", "u v", "f"), ("x1*x2, relu(x1)", "x1 x2", "g")),
            sg.derive_vec_jacobian("w1*x1 + w2*x2, w3*x1 + w4*x2", W),
            sg.derive_matrix_gradient(2, 3)]


def problems():
    return [problem(line) for line in PROBLEMS]


def markdown_docs():
    """name → a function making that Markdown handout."""
    docs = {f"example {n}": (lambda n=n: handout_of_example(n)) for n in EXAMPLES}
    docs.update({k: (lambda s=s, o=o: sg.handout(s, fmt="markdown", **o))
                 for k, (s, o) in SPECS.items()})
    docs["functions"] = lambda: sg.handout(function_derivations(), fmt="markdown")
    docs["worksheet problems.txt"] = lambda: sg.handout(
        read_problems(str(ROOT / "examples" / "handouts" / "problems.txt")), fmt="markdown")
    docs["matrix calculus"] = lambda: sg.handout(problems(), fmt="markdown")
    docs["quotes and links in names"] = lambda: sg.handout(hostile_nets()[1], fmt="markdown")
    for op, i in OPS:
        docs[f"op {op} {i}"] = lambda op=op, i=i: sg.handout(BUILDERS[op][i](), fmt="markdown",
                                                              level="both")
    return docs


def handout_of_example(name):
    ns = runpy.run_path(str(ROOT / "examples" / "handouts" / f"{name}.py"))
    return sg.handout(ns["net"], fmt="markdown", **ns.get("handout_options", {}))


MARKDOWN = markdown_docs()


@pytest.fixture(scope="module")
def markdown():
    """Each handout made once for the module's tests."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = MARKDOWN[name]()
        return cache[name]
    return get


@pytest.mark.parametrize("name", list(MARKDOWN))
def test_markdown_handout_math_renders(renderers, markdown, name):
    blocks = markdown_math(markdown(name))
    assert len(blocks) > 5
    assert not (f := renderers.failures(blocks, name)), report(f)


@pytest.mark.parametrize("name", list(MARKDOWN))
def test_markdown_handout_prose_has_no_tex(markdown, name):
    """Outside the math a Markdown renderer shows TeX as typed: no macros (a backslash before a
    letter; \\\\, \\* and the like are Markdown's own escapes) and no TeX quotes `` ''."""
    md = FENCED.sub("", markdown(name))  # (a code block is shown as typed)
    prose = re.sub(r"\$\$.*?\$\$", "", md, flags=re.S)
    prose = re.sub(r"(?<!\\)\$((?:[^$\\]|\\.)+)\$", "", prose)
    for line in prose.splitlines():
        assert not re.search(r"(?<!\\)\\[A-Za-z]|``|''", line.replace("\\\\", "")), line


def notebook_derivations():
    """name → Derivations whose _repr_latex_ a notebook would show."""
    out = {f"function {d.title}": [d] for d in function_derivations()}
    for spec, level, opts in [("2-2-1", "matrix", {}), ("2-2-1", "element", {}),
                              ("2-3-2", "matrix", dict(hidden="tanh", output="softmax",
                                                        loss="cross_entropy")),
                              ("2-2-1", "element", dict(hidden="sigmoid", output="sigmoid",
                                                         loss="bce"))]:
        net = sg.load_network(spec, **opts)
        params = net.parameters if level == "matrix" else ["w1", "b1", "w5"]
        out[f"{spec} {level} {opts}"] = [net.derive(p, level=level) for p in params]
    for name in ("lstm", "attention", "cnn", "multitask"):
        net = runpy.run_path(str(ROOT / "examples" / "handouts" / f"{name}.py"))["net"]
        out[f"example {name}"] = [net.derive(p) for p in net.parameters[:4]]
    out["backprop with a penalty"] = [sg.mlp([2, 2, 1], penalty=0.01).backprop()]
    out["matrix calculus"] = problems()
    return out


@pytest.mark.slow  # (15 s: the notebook executed, then every output rendered)
def test_notebook_latex_renders(renderers, tmp_path):
    """_repr_latex_ of a sample of derivations, and those of networks in the feature notation."""
    blocks, where = [], []
    for name, ds in notebook_derivations().items():
        for d in ds:
            blocks.append(repr_math(d))
            where.append(name)
            if not name.startswith(("function", "matrix")):  # networks: the notation matters
                blocks.append((notebook_latex(d, "feature")[1:-1], False))
                where.append(name + " (feature notation)")
    fails = [f for w, b in zip(where, blocks) for f in renderers.failures([b], w)]
    assert len(blocks) > 60 and not fails, report(fails)
    pdflatex_accepts(blocks, tmp_path)


# -- the example notebook, run by nbclient: its outputs are what Jupyter renders ------------------
NOTEBOOK = ROOT / "examples" / "derivations.ipynb"


@pytest.fixture(scope="module")
def notebook():
    """examples/derivations.ipynb executed in a fresh kernel (the `notebook` extra: nbclient,
    nbformat, ipykernel; skipped without them)."""
    why = "needs the notebook extra: pip install -e '.[notebook]' (.ci/run does)"
    nbformat = pytest.importorskip("nbformat", reason=why)
    nbclient = pytest.importorskip("nbclient", reason=why)
    pytest.importorskip("ipykernel", reason=why)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb


def notebook_latex_outputs(nb) -> list:
    return [out["data"]["text/latex"] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if "text/latex" in out.get("data", {})]


def test_example_notebook_runs_and_shows_each_derivation(notebook):
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]["ename"] + ": " + errors[0]["evalue"]
    # every cell but the import ends in a derivation, which displays itself as LaTeX
    latex = notebook_latex_outputs(notebook)
    assert len(latex) == len(code) - 1 and all(t.startswith("$\\displaystyle ") for t in latex)
    assert r"{\backslash}\textbf{input}" in latex[-1] or r"{\backslash}\textit{input}" in latex[-1]


def test_example_notebook_math_renders(notebook, renderers):
    """Every LaTeX output of the executed notebook, as Jupyter's MathJax (or VS Code's KaTeX) gets
    it, and the math of its Markdown cells."""
    blocks = [(t[1:-1], False) for t in notebook_latex_outputs(notebook)]
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            blocks += markdown_math(cell.source)
    assert len(blocks) >= 10
    assert not (f := renderers.failures(blocks, "examples/derivations.ipynb")), report(f)
