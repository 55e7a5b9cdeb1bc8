"""Multi-task losses (net.add_loss): ℓ = Σ_k w_k ℓ_k, each term with its own output and target.

Gradients of two-headed networks equal torch autograd (float64, relative 1e-9) and central
differences, on every kernel path (numpy, the unrolled scalar path, the python backend); the
derivations name each term and their sum; targets are a dict keyed by the outputs; training
shuffles every target with X; one loss of weight 1 is the network of set_loss, code and all."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.graph.network import weight_value

torch = pytest.importorskip("torch")
F = torch.nn.functional
ROOT = Path(__file__).resolve().parents[1]


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def mse_ce(w=0.5, penalty=0):
    """A tanh trunk, a regression head (mse) and a classifier (softmax, cross-entropy, w)."""
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 3), 4), "tanh")
    reg = net.dense(h, 2, name="reg")
    cls = net.act(net.dense(h, 3), "softmax", name="cls")
    net.add_loss(reg, "mse").add_loss(cls, "cross_entropy", weight=w)
    net.penalty = penalty
    return net


def bce_mse(w="1/4"):
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 3), 5), "relu")
    p = net.act(net.dense(h, 2), "sigmoid", name="p")
    net.add_loss(p, "bce")
    net.add_loss(net.dense(h, 1, name="reg"), "mse", weight=w)
    return net


def torch_grads(params, loss_of):
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    loss = loss_of(ps)
    grads = torch.autograd.grad(loss, list(ps.values()))
    return loss.item(), {k: g.numpy() for k, g in zip(ps, grads)}


def half_mse(a, y):  # the notes' mse: ½‖ŷ − y‖² per example, the mean over the rows
    return 0.5 * ((a - y) ** 2).sum() / len(a)


def kernels(net):
    return [net.compile(scalar=False), net.compile(scalar=True), net.compile(backend="python")]


def assert_equal_torch(net, params, X, Y, t_loss, t_grads):
    for k in kernels(net):
        loss, grads = k(params, X, Y)
        assert abs(loss - t_loss) <= 1e-12 * max(1.0, abs(t_loss)), (loss, t_loss)
        for p in params:
            assert rel(grads[p], t_grads[p]) < 1e-9, (p, grads[p], t_grads[p])


def random_params(net, rng):
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in net.init_params(seed=1).items()}


@pytest.mark.parametrize("n", [1, 5, 40])
@pytest.mark.parametrize("w,penalty", [(0.5, 0), ("1/3", 0.02), (2, 0)])
def test_mse_and_cross_entropy_heads_equal_torch(n, w, penalty):
    net = mse_ce(w, penalty)
    rng = np.random.default_rng(n)
    params = random_params(net, rng)
    X = rng.standard_normal((n, 3))
    labels = rng.integers(0, 3, n)
    Yreg = rng.standard_normal((n, 2))
    wt = float(weight_value(w))
    lam = float(net.penalty)

    def loss_of(ps):
        h = torch.tanh(F.linear(torch.tensor(X), ps["W1"], ps["b1"]))
        out = half_mse(F.linear(h, ps["W2"], ps["b2"]), torch.tensor(Yreg))
        out = out + wt * F.cross_entropy(F.linear(h, ps["W3"], ps["b3"]), torch.tensor(labels))
        return out + lam / 2 * sum((ps[k] ** 2).sum() for k in ("W1", "W2", "W3"))
    t_loss, t_grads = torch_grads(params, loss_of)
    for Y in ({"reg": Yreg, "cls": labels}, {"cls": np.eye(3)[labels], "reg": Yreg}):
        assert_equal_torch(net, params, X, Y, t_loss, t_grads)
    assert sg.gradcheck(net, params, X, {"reg": Yreg, "cls": labels}) < 1e-6


@pytest.mark.parametrize("n", [1, 6, 33])
def test_bce_and_mse_heads_equal_torch(n):
    net = bce_mse()
    rng = np.random.default_rng(10 + n)
    params = random_params(net, rng)
    X = rng.standard_normal((n, 3))
    Yp = rng.integers(0, 2, (n, 2)).astype(float)
    Yr = rng.standard_normal((n, 1))

    def loss_of(ps):
        h = torch.relu(F.linear(torch.tensor(X), ps["W1"], ps["b1"]))
        z = F.linear(h, ps["W2"], ps["b2"])
        bce = F.binary_cross_entropy_with_logits(z, torch.tensor(Yp), reduction="sum") / n
        return bce + 0.25 * half_mse(F.linear(h, ps["W3"], ps["b3"]), torch.tensor(Yr))
    t_loss, t_grads = torch_grads(params, loss_of)
    assert_equal_torch(net, params, X, {"p": Yp, "reg": Yr[:, 0]}, t_loss, t_grads)
    assert sg.gradcheck(net, params, X, {"p": Yp, "reg": Yr}) < 1e-6
    P = net.predict(params, X)
    assert set(P) == {"p", "reg"} and P["p"].shape == (n, 2) and P["reg"].shape == (n, 1)
    with torch.no_grad():
        h = torch.relu(F.linear(torch.tensor(X), torch.tensor(params["W1"]),
                                torch.tensor(params["b1"])))
        ref = torch.sigmoid(F.linear(h, torch.tensor(params["W2"]), torch.tensor(params["b2"])))
    assert np.allclose(P["p"], ref.numpy(), rtol=1e-12)


def test_an_output_that_feeds_another_head_and_two_terms_at_one_node_equal_torch():
    """Deep supervision: p = σ(z2) has its bce and feeds the head q (mse); and the logits z4 of
    the softmax r (cross-entropy, fused: its g begins at z4) are an output too (mse): z4's g sums
    both terms' own g's and each carries the mean's 1/n once."""
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 3), 4), "softplus")
    z2 = net.dense(h, 2)
    p = net.act(z2, "sigmoid", name="p")
    q = net.dense(p, 2, name="q")
    z4 = net.dense(net.add(h, net.dense(q, 4)), 3, name="logits")
    r = net.act(z4, "softmax", name="r")
    net.add_loss(p, "bce", weight=0.5).add_loss(q, "mse").add_loss(r, "cross_entropy", 2)
    net.add_loss(z4, "mse", weight="1/10")
    rng = np.random.default_rng(3)
    params = random_params(net, rng)
    n = 7
    X = rng.standard_normal((n, 3))
    Y = {"p": rng.integers(0, 2, (n, 2)).astype(float), "q": rng.standard_normal((n, 2)),
         "r": rng.integers(0, 3, n), "logits": rng.standard_normal((n, 3))}

    def loss_of(ps):
        t = {k: torch.tensor(v) for k, v in Y.items()}
        h = F.softplus(F.linear(torch.tensor(X), ps["W1"], ps["b1"]))
        z2 = F.linear(h, ps["W2"], ps["b2"])
        q = F.linear(torch.sigmoid(z2), ps["W3"], ps["b3"])
        z4 = F.linear(h + F.linear(q, ps["W4"], ps["b4"]), ps["W5"], ps["b5"])
        return (0.5 * F.binary_cross_entropy_with_logits(z2, t["p"], reduction="sum") / n
                + half_mse(q, t["q"]) + 2 * F.cross_entropy(z4, t["r"])
                + 0.1 * half_mse(z4, t["logits"]))
    t_loss, t_grads = torch_grads(params, loss_of)
    assert_equal_torch(net, params, X, Y, t_loss, t_grads)
    text = "\n".join(d.to_text() for d in net.derive_all())  # the chains reach every output
    assert "path" in text and "only 1/10 ℓ₄ reads logits" in text


def test_per_position_losses_over_sequences_equal_torch():
    """Two per-position heads of one sequence net (T shared): a token classifier and a
    regression, each the mean over the n·T positions."""
    T, d = 5, 3
    net = sg.Network()
    h = net.act(net.dense(net.input("x", shape=(T, d)), 4), "tanh")
    tag = net.act(net.dense(h, 3), "softmax", name="tag")
    net.add_loss(tag, "cross_entropy")
    net.add_loss(net.dense(h, 2, name="val"), "mse", weight=3)
    rng = np.random.default_rng(5)
    params = random_params(net, rng)
    n = 4
    X = rng.standard_normal((n, T, d))
    labels, vals = rng.integers(0, 3, (n, T)), rng.standard_normal((n, T, 2))

    def loss_of(ps):
        h = torch.tanh(F.linear(torch.tensor(X), ps["W1"], ps["b1"]))
        ce = F.cross_entropy(F.linear(h, ps["W2"], ps["b2"]).reshape(-1, 3),
                             torch.tensor(labels).reshape(-1))
        v = F.linear(h, ps["W3"], ps["b3"]).reshape(-1, 2)
        return ce + 3 * half_mse(v, torch.tensor(vals).reshape(-1, 2))
    t_loss, t_grads = torch_grads(params, loss_of)
    assert_equal_torch(net, params, X, {"tag": labels, "val": vals}, t_loss, t_grads)
    P = net.predict(params, X)
    assert P["tag"].shape == (n, T, 3) and P["val"].shape == (n, T, 2)
    with pytest.raises(ValueError, match=r"Y\['val'\] has shape \(4, 5\)"):
        net.compile()(params, X, {"tag": labels, "val": vals[..., 0]})


def test_outputs_of_different_positions_are_refused_in_one_line():
    net = sg.Network()
    a = net.dense(net.input("a", shape=(4, 3)), 2, name="ya")
    b = net.dense(net.input("b", shape=(5, 3)), 2, name="yb")
    net.add_loss(a, "mse").add_loss(b, "mse")
    with pytest.raises(ValueError, match=r"the outputs 'ya' and 'yb' of the loss have shapes "
                                         r"\(4, 2\) and \(5, 2\)"):
        net.compile()


@pytest.mark.parametrize("weight,why", [
    (0, "zero"), (-1, "negative"), (float("nan"), "not finite"), (float("inf"), "not finite"),
    (True, "a bool"), ("abc", "it names abc"), ([1], "a list"), ("1/0", "not finite")])
def test_bad_weights_are_refused_in_one_line(weight, why):
    net = mse_ce()
    before = net.losses
    with pytest.raises(ValueError, match=r"add_loss: weight: expected a finite number > 0") as e:
        net.add_loss("z1", "mse", weight=weight)
    assert why in str(e.value) and "\n" not in str(e.value)
    assert net.losses == before


def test_add_loss_refusals_and_set_loss_replacing_the_terms():
    net = mse_ce()
    with pytest.raises(ValueError, match="the node 'cls' already has a loss"):
        net.add_loss("cls", "mse")
    with pytest.raises(ValueError, match="unknown output node 'nope'"):
        net.add_loss("nope", "mse")
    with pytest.raises(ValueError, match="bce needs sigmoid outputs"):
        net.add_loss("z1", "bce")
    assert [t.output for t in net.losses] == ["reg", "cls"]
    assert net.losses[1].weight == weight_value("1/2")
    net.set_loss("cls", "cross_entropy")  # one loss again: Y is an array, as before
    assert len(net.losses) == 1 and not net.several_losses and net.target.name == "y"
    with pytest.raises(ValueError, match="the loss does not depend on parameter W2"):
        net.compile()  # (the head reg is left without a loss)


def test_one_loss_of_weight_one_is_the_network_of_set_loss():
    a, b = sg.mlp([3, 4, 3], output="softmax", loss="cross_entropy"), sg.Network()
    h = b.act(b.dense(b.input("x", 3), 4, name="z1"), "relu", name="h1")
    b.add_loss(b.act(b.dense(h, 3, name="z2"), "softmax", name="yhat"), "cross_entropy")
    assert b.compile().source == a.compile().source
    assert b.backprop().to_text() == a.backprop().to_text()
    assert [d.to_latex() for d in b.derive_all()] == [d.to_latex() for d in a.derive_all()]


def test_targets_dict_errors_name_the_key_or_shape():
    net = mse_ce()
    k, params, X = net.compile(), net.init_params(), np.zeros((4, 3))
    good = {"reg": np.zeros((4, 2)), "cls": np.array([0, 1, 2, 0])}
    cases = [(good["reg"], r"^Y: this network's loss has 2 terms, one per output; give a dict "
                           r"\{'reg': \(n, 2\) array, 'cls': \(n, 3\) array or \(n,\) integer "
                           r"labels\}$"),
             ({"reg": good["reg"]}, r"^Y: missing 'cls' \(the outputs of the loss are 'reg', "
                                    r"'cls'\)$"),
             ({**good, "extra": 1}, r"^Y: unexpected 'extra'"),
             ({**good, "reg": np.zeros((4, 3))}, r"^Y\['reg'\] has shape \(4, 3\); expected "
                                                 r"\(4, 2\)$"),
             ({**good, "cls": np.array([0, 1, 2, 3])}, r"^Y\['cls'\]: labels must lie in 0..2"),
             ({**good, "reg": np.full((4, 2), np.nan)}, r"^Y\['reg'\] holds nan"),
             (None, r"^Y: the kernel needs the targets, a dict")]
    for Y, msg in cases:
        for kern in (k, net.compile(backend="python")):
            with pytest.raises(ValueError, match=msg):
                kern(params, X, Y)
    with pytest.raises(ValueError, match=r"^Y: training needs the targets, a dict"):
        sg.train(net, X, None, quiet=True)


def test_train_shuffles_every_target_with_x_and_reports_the_total():
    """One epoch of sgd in batches of 1: the same steps as a loop over train's own order."""
    net = mse_ce()
    rng = np.random.default_rng(0)
    n = 12
    X = rng.standard_normal((n, 3))
    Y = {"reg": rng.standard_normal((n, 2)), "cls": rng.integers(0, 3, n)}
    params, history = sg.train(net, X, Y, optimizer="sgd", lr=0.05, epochs=1, batch_size=1,
                               seed=4, quiet=True)
    k, p = net.compile(), net.init_params(seed=4)
    order, total = np.random.default_rng(4).permutation(n), 0.0
    for i in order:
        loss, g = k(p, X[i:i + 1], {o: y[i:i + 1] for o, y in Y.items()})
        total += loss
        p = {q: p[q] - 0.05 * g[q] for q in p}
    assert history == pytest.approx([total / n], rel=1e-12)
    assert all(np.allclose(params[q], p[q], rtol=1e-12, atol=1e-15) for q in p)


def test_training_learns_both_tasks():
    net = mse_ce(w=1)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((600, 3))
    Y = {"reg": np.c_[X[:, 0] - X[:, 1], 0.5 * X[:, 2]],
         "cls": (X[:, 0] > 0).astype(int) + (X[:, 2] > 0)}
    params, history = sg.train(net, X, Y, epochs=40, lr=0.02, quiet=True)
    assert history[-1] < 0.25 * history[0]
    P = net.predict(params, X)
    assert (P["cls"].argmax(1) == Y["cls"]).mean() > 0.9
    assert np.mean((P["reg"] - Y["reg"]) ** 2) < 0.05


def test_derivations_print_each_term_the_total_and_fused_heads():
    net = mse_ce()
    text = net.backprop().to_text()
    assert "ℓ₁ = sum((reg − y_reg)^⊙2)/2" in text  # (entries as the maths write them)
    assert "the cross-entropy −Σₖ yₖ log ŷₖ of cls against its target y_cls" in text
    assert "ℓ = ℓ₁ + ℓ₂/2" in text and "the weighted sum of its 2 terms" in text
    assert "g_z₃ = (cls − y_cls)/2" in text  # fused: softmax + cross-entropy → ŷ − y
    assert "g_h₁ = W₂ᵀg_reg + W₃ᵀg_z₃" in text and "∇_W₂ ℓ = g_reg h₁ᵀ" in text  # the trunk sums both heads' g's
    d = net.derive("W3")
    steps = [str(s.lhs) for s in d.steps]
    assert steps[:3] == ["ℓ_1", "ℓ_2", "ℓ"]
    assert any("separates ℓ_2 from z3" in s.why for s in d.steps)
    latex = sg.to_latex(net.backprop())
    assert r"\ell &= \ell_{1} + \frac{\ell_{2}}{2}" in latex
    assert r"\mathbf{y}_{\boldsymbol{\mathrm{cls}}}" in latex
    # the batch program: each G of a head carries its weight and the 1/n once
    src = net.compile(scalar=False).source
    assert "(-(1/2)/n)*_y1.T" in src and "(1/n)" in src


def test_element_level_sums_the_weighted_terms_and_refuses_of_output():
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 2), 2), "relu")
    net.add_loss(net.dense(h, 1, name="reg"), "mse")
    net.add_loss(net.act(net.dense(h, 2), "softmax", name="cls"), "cross_entropy", weight=0.5)
    d = net.derive("w1", level="element")  # checked against sympy.diff of the written-out loss
    assert "the squared error ½‖ŷ − y‖² of reg against y_reg" in d.steps[0].why
    assert "1/2 × the cross-entropy" in d.steps[0].why
    assert d.meta["checked"]
    d7 = net.derive("w7", level="element")
    assert any("it is 1/2·(cls_1 − y_cls_1), as at the matrix level" in s.why for s in d7.steps)
    with pytest.raises(ValueError, match=r"of='output' needs a network with one output; this "
                                         r"one's loss reads 2 \(reg, cls\): use of='loss'"):
        net.derive("w1", level="element", of="output")
    # the element gradient at a point equals the kernel's for one example
    S = d.meta["scalar"]
    rng = np.random.default_rng(2)
    params = random_params(net, rng)
    x, yr, yc = rng.standard_normal(2), rng.standard_normal(1), np.array([0.0, 1.0])
    env = {s: v for p, M in S.params.items() for s, v in zip(M, params[p].reshape(-1))}
    env.update(zip(S.inputs["x"], x))
    env.update(zip(S.targets["reg"], yr))
    env.update(zip(S.targets["cls"], yc))
    got = float(d.meta["explicit"].subs(env))
    _, grads = net.compile()(params, x[None], {"reg": yr[None], "cls": yc[None]})
    assert got == pytest.approx(grads["W1"][0, 0], rel=1e-10)


def test_cli_derives_a_file_declared_two_loss_network():
    path = str(ROOT / "examples" / "handouts" / "multitask.py")
    r = CliRunner().invoke(cli, ["derive", path, "--wrt", "W1"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "ℓ = ℓ₁ + ℓ₂/2" in r.output and "path 2 of 2" in r.output
    r = CliRunner().invoke(cli, ["derive", path, "--wrt", "W3", "--format", "json"],
                           catch_exceptions=False)
    rec = json.loads(r.output)[0]
    assert [s["lhs"] for s in rec["steps"][:3]] == ["ℓ_1", "ℓ_2", "ℓ"]
    r = CliRunner().invoke(cli, ["derive", path, "--level", "element", "--of", "output",
                                 "--wrt", "w1"])
    assert r.exit_code == 2 and "needs a network with one output" in r.output


def test_cli_derive_in_esl_writes_every_head_as_its_handout_does():
    # (derive printed the second head's W⁽³⁾ and z⁽³⁾ beside ESL's β while the handout wrote
    # β⁽²⁾, T⁽²⁾: only handouts applied the notation's heads)
    path = str(ROOT / "examples" / "handouts" / "multitask.py")
    r = CliRunner().invoke(cli, ["derive", path, "--notation", "esl", "--format", "latex"],
                           catch_exceptions=False)
    assert r.exit_code == 0
    assert "W^{(3)}" not in r.output and "z^{(3)}" not in r.output
    assert r"\beta^{(1)}" in r.output and r"\beta^{(2)}" in r.output and "T^{(2)}" in r.output


def test_handout_has_each_term_and_the_total():
    import runpy
    ns = runpy.run_path(str(ROOT / "examples" / "handouts" / "multitask.py"))
    md = sg.handout(ns["net"], fmt="markdown", **ns["handout_options"])
    assert "The loss has 2 terms, each of one output against its own target" in md
    assert r"\ell &= \ell_{1} + \frac{1}{2} \, \ell_{2}" in md
    assert "a multi-task network with the outputs reg, cls" in md
    assert "2 losses (squared-error, cross-entropy)" in md


@pytest.fixture(scope="module")
def multitask_tex():
    """The example's handout in LaTeX, in the slides' notation and in ESL's (issue 13's trial)."""
    import runpy
    net = runpy.run_path(str(ROOT / "examples" / "handouts" / "multitask.py"))["net"]
    return {nota: sg.handout(net, fmt="article", notation=nota, level="both")
            for nota in ("slides", "esl")}


@pytest.mark.parametrize("nota", ["slides", "esl"])
def test_handout_sets_multi_letter_names_upright_at_every_level(multitask_tex, nota):
    # issue 13: the element level left reg and cls to SymPy, which sets cls_1 in italics, a
    # product c·l·s (cls_{1}, \delta_{cls_{2}}); the matrix level already wrote \mathrm{cls}
    tex = multitask_tex[nota]
    assert r"\mathrm{cls}_{1}" in tex and r"\delta_{\mathrm{cls}_{2}}" in tex
    assert r"{$\mathrm{reg}$}" in tex  # the diagram's node
    assert not re.search(r"(?<![{\\a-z])(cls|reg)_\{", tex)
    body = re.sub(r"\\mathrm\{(reg|cls)\}", "", tex.split(r"\begin{document}")[1])
    assert not re.search(r"\b(reg|cls)\b", body.replace("outputs reg, cls", ""))


@pytest.mark.parametrize("nota", ["slides", "esl"])
def test_cross_entropy_in_the_logits_writes_the_ones_vector_bold(multitask_tex, nota):
    # issue 13: ESL (not bold) printed the ones vector as the number 1, ℓ₂ = Σ y ⊙ (1 log Σ exp z
    # − z), a stray factor; the words said ŷ/ŷ "= 1, the vector of ones" and "yᵀ1" too
    tex = multitask_tex[nota]
    assert r"\left(\mathbf{1} \log \sum \exp" in tex and r"(1 \log" not in tex
    assert r"\hat{y} = \mathbf{1}$, the vector of ones" in tex
    assert r"^{\top} \mathbf{1} = \sum_{k} y_{k} = 1" in tex


@pytest.mark.parametrize("nota", ["slides", "esl"])
def test_each_target_is_written_one_way_at_every_level(multitask_tex, nota):
    # issue 13: the element level named the targets y1, y2_1, y2_2 (y_1, y_1^{(2)}) beside the
    # matrix level's y_cls; now both name them after their output
    tex = multitask_tex[nota]
    cls = r"{y_{\boldsymbol{\mathrm{cls}}}}" if nota == "slides" else r"{y_{\mathrm{cls}}}"
    reg = r"y_{\boldsymbol{\mathrm{reg}}}" if nota == "slides" else r"y_{\mathrm{reg}}"
    assert cls + "_{1}" in tex and cls + "_{k}" in tex  # an entry, at both levels
    assert r"\mathrm{reg} - " + reg in tex
    # (the second head's layer under esl is β⁽²⁾, β₀⁽²⁾, T⁽²⁾: test_esl)
    heads = re.sub(r"(\\beta|T)(_\{\d*\})?\^\{\(2\)", "", tex)
    assert "^{(2)}" not in heads.replace(r"\mathbf{W}^{(2)}", "").replace(r"\mathbf{b}^{(2)}", "")
    assert not re.search(r"(?<![{\\a-z])y_\{\d\}", tex)


def test_each_path_is_labelled_by_the_term_it_differentiates_then_summed():
    # both paths' chains were written "∂ℓ/∂vec[W₁] = …" with different right-hand sides, so they
    # read as equal (issue 13's trial): each is the gradient of the one term reading its head
    path = str(ROOT / "examples" / "handouts" / "multitask.py")
    out = CliRunner().invoke(cli, ["derive", path, "--wrt", "W1"], catch_exceptions=False).output
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.startswith("∂ℓ₁/∂vec[W₁] = ∂ℓ₁/∂reg · ∂reg/∂h₁") for line in lines)
    assert any(line.startswith("∂ℓ₂/∂vec[W₁] = ∂ℓ₂/∂cls · ∂cls/∂z₃") for line in lines)
    assert "∂ℓ/∂vec[W₁] = ∂ℓ₁/∂vec[W₁] + 1/2 · ∂ℓ₂/∂vec[W₁]" in out
    assert not any(line.startswith("∂ℓ/∂vec[W₁] = ∂ℓ/∂") for line in lines)
    # the chains' left sides differ wherever their right sides do
    d = mse_ce().derive("W1")
    chains = [s for s in d.steps if s.rule == "chain_rule" and s.why.startswith("path")]
    assert len(chains) == 2 and len({s.lhs for s in chains}) == 2
    tex = CliRunner().invoke(cli, ["derive", path, "--wrt", "W1", "--notation", "esl",
                                   "--format", "latex"], catch_exceptions=False).output
    assert r"\frac{1}{2} \frac{\partial \ell_{2}}{\partial" in tex


def test_shared_backward_pass_claims_no_single_path_g_for_the_trunk():
    """The shared backward pass braced the trunk's first path (∂ℓ/∂reg ∂reg/∂h …) as g_z⁽¹⁾ᵀ,
    but g_z⁽¹⁾ sums what both heads pass back: a false equation in the handout."""
    import runpy
    net = runpy.run_path(str(ROOT / "examples" / "handouts" / "multitask.py"))["net"]
    tex = sg.handout(net, verbosity="full")
    sec = tex[tex.index("Every chain above begins"):tex.index("from the output down")]
    assert r"\partial \operatorname{vec}[\mathbf{W}^{(1)}]}} &" not in sec
    assert r"The loss reaches $\mathbf{W}^{(1)}$ along several paths" in sec
    assert r"\partial \operatorname{vec}[\mathbf{W}^{(2)}]}} &" in sec  # (one path: braced)
