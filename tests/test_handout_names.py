"""Issue 13 (an instructor's trial of the transformer handout): every value is written by its role
and block, never by a generated node name or its node number, and no two roles share a letter."""
import re
import runpy
from pathlib import Path

import pytest

from symgrad.graph.ops import OPS
from symgrad.handouts.build import _symbols, build, handout
from symgrad.printing.names import notation

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples" / "handouts").glob("*.py"))


def example(name):
    ns = runpy.run_path(str(ROOT / "examples" / "handouts" / f"{name}.py"))
    return ns["net"]


@pytest.fixture(scope="module")
def attention_md():
    return handout(example("attention"), fmt="markdown")


def test_the_transformer_is_written_by_role_and_block(attention_md):
    md = attention_md
    rows = md[md.index(r"\begin{aligned}"):md.index(r"\end{aligned}")]
    for row in [r"\mathbf{e} &= \mathbf{E}^{\top} \operatorname{onehot}",
                r"\hat{\mathbf{x}}^{(1)} &= \operatorname{normalize}\left(\mathbf{e}\right)",
                r"\tilde{\mathbf{x}}^{(1)} &= \boldsymbol{\gamma}^{(1)} \odot "
                r"\hat{\mathbf{x}}^{(1)} + \boldsymbol{\beta}^{(1)}",
                r"\mathbf{q}^{(2)} &= \mathbf{W}_{q}^{(2)} \tilde{\mathbf{x}}^{(1)} + "
                r"\mathbf{b}_{q}^{(2)}",
                r"\mathbf{a}^{(2)} &= \operatorname{softmax}\left(\mathbf{s}^{(2)}\right)",
                r"\mathbf{r}^{(1)} &= \mathbf{e} + \mathbf{z}^{(1)}",
                r"\hat{\mathbf{x}}^{(2)} &= \operatorname{normalize}\left(\mathbf{r}^{(1)}\right)",
                r"\mathbf{h}^{(2)} &= \operatorname{relu}(\mathbf{z}^{(2)})",
                r"\mathbf{r}^{(2)} &= \mathbf{r}^{(1)} + \mathbf{z}^{(3)}"]:
        assert row in rows, row
    # the graph's node numbers (s⁽⁷⁾, a⁽⁸⁾, s⁽¹⁸⁾) and generated names are gone, everywhere
    for raw in ["xhat", r"\mathrm{ln}", r"\mathrm{emb}", r"\mathrm{head}", r"\mathrm{Wq}",
                "scale_shift", "scale\\_shift", "attn_softmax", "attn\\_softmax"]:
        assert raw not in md, raw
    sups = {int(k) for k in re.findall(r"\^\{\((\d+)\)", md)}
    assert max(sups) <= 4, sorted(sups)  # at most 4 dense layers; node numbers ran to 24


# the notes' layers: z⁽ᵏ⁾ = W⁽ᵏ⁾ h + b⁽ᵏ⁾ whether the product is dense or a convolution
LAYERS = {"dense", "dense_transposed", "conv2d", "conv1d"}


def _roles(net):
    """{name: its role}: a node's op, a parameter's (op, slot) in the first node that reads it."""
    roles = {n: ("input",) for n, node in net.nodes.items() if node.op == "input"}
    for n, node in net.nodes.items():
        if node.op != "input":
            op = "layer" if node.op in LAYERS else node.op
            roles[n] = (op,)
            for k, p in enumerate(node.params):
                roles.setdefault(p, (op, k))
    return roles


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_two_roles_share_a_symbol_in_any_example_handout(name):
    """The handout's symbol table: every node and parameter as the handout prints it. Two values
    print alike never, and among the names symgrad chose one letter (with its subscript) is one
    role: the trial's 𝐬 was the attention scores and the residual sums."""
    net = example(name)
    for preset in ("slides", "feature"):
        nota = _symbols(net, preset)
        roles, seen, letters = _roles(net), {}, {}
        for n, role in roles.items():
            t = nota.vector(n)
            assert t.tex() not in seen, (preset, n, seen.get(t.tex()))
            seen[t.tex()] = n
            if n in net.generated:  # (a letter the user chose, gated's b, is theirs)
                letters.setdefault((t.base, t.sub), set()).add(role)
        shared = {k: v for k, v in letters.items() if len(v) > 1}
        assert not shared, (preset, shared)


def test_a_clash_with_a_name_the_user_chose_keeps_the_name():
    """A user's node named r1 prints r⁽¹⁾ by its name; the generated residual sum that would
    print the same keeps its own name instead of taking the symbol."""
    import symgrad as sg
    net = sg.Network()
    x = net.input("x", 2)
    r1 = net.act(net.dense(x, 2), "tanh", name="r1")
    s = net.add(r1, net.dense(r1, 2))
    net.set_loss(net.dense(s, 1, name="yhat"), "mse")
    nota = _symbols(net, "slides")
    texs = [nota.vector(n).tex() for n in [*net.nodes, *net.shapes]]
    assert len(texs) == len(set(texs))
    assert nota.vector("r1").tex() == r"\mathbf{r}^{(1)}"
    assert nota.vector(s).tex() != r"\mathbf{r}^{(1)}"


def test_the_title_says_what_the_graph_is_from_its_ops():
    """Not "a 1-2-2-2-2-2-2-4-8-4-6 network" (the sizes of the dense layers in order, an MLP's
    title) and no op key (scale_shift, attn_softmax): what the graph is, from its ops."""
    doc = build(example("attention"), brief_past=1)
    assert doc.title == ("Backpropagation, step by step: a transformer block on sequences of "
                         "T = 4 tokens: an embedding of 6 tokens, 2 layer norms, causal "
                         "self-attention of 2 heads, 2 residual connections")
    for part in ["ReLU hidden units", "softmax output", "cross-entropy loss"]:
        assert part in doc.subtitle, part
    assert not re.search(r"\d-\d", doc.title + doc.subtitle)
    assert "_" not in doc.subtitle and "\\_" not in doc.subtitle
    # an MLP keeps its sizes; a gated net (mul) is said to be one
    assert build(example("xor")).title.endswith("a 2-2-1 network")
    assert build(example("lstm")).title.endswith("a gated network: 5 sums, 3 gates")


def test_the_token_input_is_said_once_as_token_ids(attention_md):
    """tok is 4 token ids below V = 6: {0, …, 5}⁴, not ℝ¹ (one feature a position)."""
    md = attention_md
    assert (r"$\boldsymbol{\mathrm{tok}} \in \lbrace 0, \ldots, 5 \rbrace^{4}$ (4 tokens, each an "
            r"id in a vocabulary of 6) to an output $\hat{\mathbf{y}} \in \mathbb{R}^{6}$ at each "
            r"of its 4 positions") in md
    assert not re.search(r"\\mathrm\{tok\}\}? \\in \\mathbb\{R\}", md)


def test_the_transformer_slides_derive_the_shared_pass_once():
    """105 pages of slides for 25 parameters: one section per layer now (its parameters' chain
    once, each gradient boxed), and the shared backward pass the g's alone, once, without
    clicks. Pages are frames plus clicks (each \\pause adds a page)."""
    tex = handout(example("attention"), fmt="beamer")
    frames, clicks = tex.count(r"\begin{frame}"), tex.count(r"\pause")
    # 42 measured: 31 at first, then the algorithm's frames split so none shrinks below 97 %, the
    # definitions one item a line and E's section of its own (it is no longer the exercise)
    assert frames + clicks <= 44, (frames, clicks)
    sections = re.findall(r"\\section\{The gradients? with respect to ([^\n]*)\}", tex)
    assert len(sections) == 13  # E; γ, β twice; W_q, W_k, W_v of 2 heads; 4 dense layers
    # (b_q⁽¹⁾, the first dense bias, is the exercise: its box is left out of the body)
    for p in [r"\mathbf{W}_{q}^{(1)}", r"\mathbf{b}_{k}^{(1)}", r"\mathbf{W}^{(4)}",
              r"\boldsymbol{\beta}^{(2)}", r"\mathbf{E}"]:
        assert tex.count(r"\boxed{\nabla_{%s} \ell = " % p) == 1, p
    # each g once: the backward pass's g of the last dense layer's input, not repeated
    assert tex.count(r"\mathbf{g}_{\mathbf{r}^{(2)}}} &= ") <= 1
