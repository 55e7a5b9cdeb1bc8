"""An LSTM cell built from symgrad's ops (dense layers, sigmoid and tanh, the gate ``mul``, ``add``),
unrolled over T steps with its weights shared across them, exactly as torch.nn.LSTM computes it:

    i = σ(W_ii x + b_ii + W_hi h + b_hi)     f = σ(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)  o = σ(W_io x + b_io + W_ho h + b_ho)
    c ← f ⊙ c + i ⊙ g                        h ← o ⊙ tanh(c)

It checks the compiled loss and gradients against torch.nn.LSTM with the same weights copied in
(when torch is installed), then learns a small sequence task: is the running sum of the sequence
positive at its end (T = 6 noisy ±1 steps)? Run: python examples/lstm.py (SYMGRAD_EPOCHS=n shortens
the run). h0 and c0 are inputs, zeros here, as torch.nn.LSTM's default.
"""
import os
import time

import numpy as np

import symgrad as sg

T, D, H = 6, 1, 6  # steps, input features, hidden units
GATES = ("i", "f", "g", "o")  # torch's order in weight_ih_l0 and weight_hh_l0


def lstm_net(T=T, D=D, H=H):
    net = sg.Network()
    xs = [net.input(f"x{t + 1}", D) for t in range(T)]
    h, c = net.input("h0", H), net.input("c0", H)
    for t, x in enumerate(xs, start=1):
        pre = {k: net.add(net.dense(x, H, W=f"W_i{k}", b=f"b_i{k}", name=f"a{k}{t}"),
                          net.dense(h, H, W=f"W_h{k}", b=f"b_h{k}", name=f"r{k}{t}"),
                          name=f"s{k}{t}") for k in GATES}
        i, f, o = (net.act(pre[k], "sigmoid", name=f"{k}{t}") for k in ("i", "f", "o"))
        g = net.act(pre["g"], "tanh", name=f"g{t}")
        c = net.add(net.mul(f, c, name=f"fc{t}"), net.mul(i, g, name=f"ig{t}"), name=f"c{t}")
        h = net.mul(o, net.act(c, "tanh", name=f"tc{t}"), name=f"h{t}")
    out = net.act(net.dense(h, 2, W="W_out", b="b_out", name="z"), "softmax", name="yhat")
    return net.set_loss(out, "cross_entropy")


def data(n, rng):
    steps = rng.choice([-1.0, 1.0], size=(n, T)) + 0.3 * rng.normal(size=(n, T))
    label = (steps.sum(axis=1) > 0).astype(int)
    X = {f"x{t + 1}": steps[:, t:t + 1] for t in range(T)}
    X.update(h0=np.zeros((n, H)), c0=np.zeros((n, H)))
    return X, label


def torch_check(net, params, X, y):
    """The loss and every gradient against torch.nn.LSTM with the same weights copied in."""
    import torch
    lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(H, 2, dtype=torch.float64)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(np.vstack([params[f"W_i{k}"] for k in GATES])))
        lstm.weight_hh_l0.copy_(torch.tensor(np.vstack([params[f"W_h{k}"] for k in GATES])))
        lstm.bias_ih_l0.copy_(torch.tensor(np.concatenate([params[f"b_i{k}"] for k in GATES])))
        lstm.bias_hh_l0.copy_(torch.tensor(np.concatenate([params[f"b_h{k}"] for k in GATES])))
        head.weight.copy_(torch.tensor(params["W_out"]))
        head.bias.copy_(torch.tensor(params["b_out"]))
    seq = torch.tensor(np.stack([X[f"x{t + 1}"] for t in range(T)], axis=1))
    out, _ = lstm(seq)
    loss = torch.nn.functional.cross_entropy(head(out[:, -1]), torch.tensor(y))
    loss.backward()
    ours, grads = net.compile()(params, X, y)
    theirs = {"W_i": lstm.weight_ih_l0.grad, "W_h": lstm.weight_hh_l0.grad,
              "b_i": lstm.bias_ih_l0.grad, "b_h": lstm.bias_hh_l0.grad}
    worst = abs(ours - loss.item()) / abs(loss.item())
    for p, g in theirs.items():
        stacked = (np.vstack if p.startswith("W") else np.concatenate)(
            [grads[f"{p}{k}"] for k in GATES])
        worst = max(worst, np.linalg.norm(stacked - g.numpy()) / np.linalg.norm(g.numpy()))
    worst = max(worst, np.linalg.norm(grads["W_out"] - head.weight.grad.numpy())
                / np.linalg.norm(head.weight.grad.numpy()))
    return worst


def main():
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    net = lstm_net()
    net.compile()
    built = time.perf_counter() - t0
    X, y = data(2000, rng)
    X_test, y_test = data(500, rng)
    params = net.init_params(seed=0)
    try:
        import torch  # noqa: F401
        err = torch_check(net, params, {k: v[:64] for k, v in X.items()}, y[:64])
        print(f"LSTM, T={T}: loss and gradients equal torch.nn.LSTM's to {err:.1e} (relative)")
        assert err < 1e-9, err
    except ImportError:
        print("torch is not installed: the comparison with torch.nn.LSTM is skipped")
    epochs = int(os.environ.get("SYMGRAD_EPOCHS", 30))
    t = time.perf_counter()
    params, history = sg.train(net, X, y, optimizer="adam", lr=0.01, epochs=epochs,
                               batch_size=32, seed=0, params=params, quiet=True)
    seconds = time.perf_counter() - t
    acc = float((net.predict(params, X_test).argmax(axis=1) == y_test).mean())
    print(f"derived and compiled in {built:.2f}s; {epochs} epochs in {seconds:.1f}s, "
          f"loss {history[-1]:.4f}; test accuracy {acc:.2%} on {len(y_test)} sequences")
    raise SystemExit(0 if acc >= 0.95 or epochs < 30 else 1)


if __name__ == "__main__":
    main()
