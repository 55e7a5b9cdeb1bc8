"""A small transformer from symgrad's ops, learning to sort short sequences of tokens.

    h = E_tok[tok] + E_pos[pos]                       token and learned positional embeddings
    h ← h + MHA(LayerNorm(h))                         pre-norm multi-head self-attention
    h ← h + W2 relu(W1 LayerNorm(h) + b1) + b2        pre-norm MLP (4·d hidden units)
    ŷ = softmax(W LayerNorm(h) + b)                   a distribution over the V tokens per position

(two such blocks), trained with per-position cross-entropy to output each input sequence sorted:
T = 8 tokens from a vocabulary of V = 10, so that position t must find the token of rank t, which
takes attention across positions (a position-wise model cannot do it). Attention is
permutation-equivariant, so the positions come in as a second token input ``pos`` (0..T−1 in
every example) embedded and added to the tokens, as GPT does. The gradients are derived
symbolically and compiled to one numpy kernel; when torch is installed, the loss and every
gradient of one step are checked against the same model written in torch
(nn.Embedding, nn.LayerNorm, nn.MultiheadAttention, nn.Linear) with the weights copied in.
Run: python examples/transformer.py (SYMGRAD_EPOCHS=n shortens the run).
"""
import os
import time

# One BLAS thread: the products here are small (n·T = 512 rows of 32 to 128 features), and on a
# shared 2-core machine OpenBLAS's threads spin against each other (8 s an epoch instead of 0.2).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import symgrad as sg  # noqa: E402

T, V = 8, 10                   # positions, vocabulary
D, HEADS, BLOCKS = 32, 2, 2    # model width, attention heads, pre-norm blocks


def transformer(T=T, V=V, d=D, heads=HEADS, blocks=BLOCKS):
    """The network and the names of its layers ({"blocks": [...], "ln": ..., "head": ...}), which
    the torch comparison uses to copy the weights."""
    net = sg.Network()
    tok = net.input("tok", shape=(T,), tokens=V)
    pos = net.input("pos", shape=(T,), tokens=T)
    h = net.add(net.embedding(tok, d, E="E_tok"), net.embedding(pos, d, E="E_pos"), name="h0")
    layers = {"blocks": []}
    for b in range(1, blocks + 1):
        ln1 = net.layer_norm(h, name=f"ln{b}a")
        att = net.self_attention(ln1, heads, name=f"att{b}")
        h = net.add(h, att, name=f"r{b}a")
        ln2 = net.layer_norm(h, name=f"ln{b}b")
        fc1 = net.dense(ln2, 4 * d, name=f"fc{b}")
        fc2 = net.dense(net.act(fc1, "relu", name=f"relu{b}"), d, name=f"proj{b}")
        h = net.add(h, fc2, name=f"r{b}b")
        layers["blocks"].append(dict(ln1=ln1, att=att, ln2=ln2, fc1=fc1, fc2=fc2))
    layers["ln"] = net.layer_norm(h, name="ln_f")
    layers["head"] = net.dense(layers["ln"], V, name="logits")
    net.set_loss(net.act(layers["head"], "softmax", name="yhat"), "cross_entropy")
    return net, layers


def data(n, rng):
    """n random sequences (tokens and positions) and their sorted versions, the targets."""
    tok = rng.integers(0, V, size=(n, T))
    return {"tok": tok, "pos": np.tile(np.arange(T), (n, 1))}, np.sort(tok, axis=1)


def torch_check(net, layers, X, Y):
    """The largest relative difference between the compiled loss and gradients and those of the
    same model in torch (float64), on torch's own initial weights copied into ``params``."""
    import torch
    nn = torch.nn
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.att = nn.MultiheadAttention(D, HEADS, batch_first=True)
            self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

        def forward(self, h):
            a = self.ln1(h)
            h = h + self.att(a, a, a, need_weights=False)[0]
            return h + self.fc2(torch.relu(self.fc1(self.ln2(h))))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
            self.blocks = nn.ModuleList(Block() for _ in layers["blocks"])
            self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, V)

        def forward(self, tok, pos):
            h = self.tok(tok) + self.pos(pos)
            for block in self.blocks:
                h = block(h)
            return self.head(self.ln(h))

    model = Model().double()

    def copy(f):  # {symgrad parameter: f(torch tensor)} for every parameter
        out = {"E_tok": f(model.tok.weight), "E_pos": f(model.pos.weight)}

        def pair(node, mod):
            out.update(zip(net.nodes[node].params, (f(mod.weight), f(mod.bias))))
        for names, block in zip(layers["blocks"], model.blocks):
            for key in ("ln1", "ln2", "fc1", "fc2"):
                pair(names[key], getattr(block, key))
            a = block.att
            out.update(sg.from_torch_mha(net, names["att"], f(a.in_proj_weight), f(a.in_proj_bias),
                                      f(a.out_proj.weight), f(a.out_proj.bias)))
        pair(layers["ln"], model.ln)
        pair(layers["head"], model.head)
        return out

    params = copy(lambda t: t.detach().numpy().copy())
    assert set(params) == set(net.parameters)
    logits = model(torch.tensor(X["tok"]), torch.tensor(X["pos"]))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.tensor(Y).reshape(-1))
    loss.backward()
    theirs = copy(lambda t: t.grad.numpy())
    ours, grads = net.compile()(params, X, Y)
    worst, zero = abs(ours - loss.item()) / abs(loss.item()), 0.0
    for p, g in theirs.items():
        if np.abs(g).max() < 1e-12:  # the keys' biases: softmax ignores a constant on a row
            zero = max(zero, np.abs(grads[p]).max())
        else:
            worst = max(worst, np.linalg.norm(grads[p] - g) / np.linalg.norm(g))
    return worst, zero


def main():
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    net, layers = transformer()
    net.compile()
    built = time.perf_counter() - t0
    n_params = sum(int(np.prod(s)) for s in net.shapes.values())
    print(f"transformer: tokens (T={T}, V={V}) + learned positions → {BLOCKS} pre-norm blocks "
          f"[LayerNorm → {HEADS}-head self-attention → +, LayerNorm → dense {4 * D} relu → "
          f"dense {D} → +] → LayerNorm → dense {V} softmax; d = {D}, {n_params} parameters "
          f"in {len(net.parameters)} arrays, {len(net.nodes)} nodes")
    print(f"derived and compiled in {built:.2f}s")
    X, Y = data(6000, rng)
    X_test, Y_test = data(2000, rng)
    try:
        import torch  # noqa: F401
        err, zero = torch_check(net, layers, {k: v[:32] for k, v in X.items()}, Y[:32])
        print(f"one step's loss and gradients equal torch's (nn.Embedding, nn.LayerNorm, "
              f"nn.MultiheadAttention, nn.Linear) to {err:.1e} (relative); the keys' biases "
              f"get zero gradients in both (ours below {max(zero, 1e-300):.0e})")
        assert err < 1e-9 and zero < 1e-12, (err, zero)
    except ImportError:
        print("torch is not installed: the comparison with torch is skipped")
    epochs = int(os.environ.get("SYMGRAD_EPOCHS", 12))
    params = net.init_params(seed=0, dtype="float32")
    t = time.perf_counter()
    params, history = sg.train(net, X, Y, optimizer="adam", lr=0.003, epochs=epochs,
                               batch_size=64, seed=0, params=params, quiet=True)
    seconds = time.perf_counter() - t
    pred = net.predict(params, X_test).argmax(axis=-1)
    tok_acc = float((pred == Y_test).mean())
    seq_acc = float((pred == Y_test).all(axis=1).mean())
    print(f"{len(Y)} training sequences, {epochs} epochs in {seconds:.1f}s; mean loss "
          f"{history[0]:.3f} in epoch 1, {history[-1]:.4f} in epoch {len(history)}")
    print(f"test token accuracy {tok_acc:.2%}, whole sequences {seq_acc:.2%} "
          f"(on {len(Y_test)} held-out sequences)")
    for i in range(4):
        print("  " + " ".join(map(str, X_test["tok"][i])) + "  →  "
              + " ".join(map(str, pred[i])) + ("" if (pred[i] == Y_test[i]).all() else "  WRONG"))
    raise SystemExit(0 if tok_acc >= 0.99 or epochs < 12 else 1)


if __name__ == "__main__":
    main()
