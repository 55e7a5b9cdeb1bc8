"""Logistic regression is a 2-1 network with a sigmoid output and binary cross-entropy: its
gradient, derived and compiled, is the textbook Xᵀ(σ(Xw + b) − y)/n. Two Gaussian clouds, plain
gradient descent. Run: python examples/logistic_regression.py"""
import numpy as np

import symgrad as sg

rng = np.random.default_rng(0)
n = 200
X = np.vstack([rng.normal([-1, -1], 1.0, (n, 2)), rng.normal([1.5, 1], 1.0, (n, 2))])
Y = np.repeat([0.0, 1.0], n)

net = sg.mlp([2, 1], output="sigmoid", loss="bce")
kernel = net.compile()
legend = "".join(line + "\n" for line in kernel.source.splitlines() if " = " in line and
                 line.startswith("# "))  # which value each generated name holds
print(legend + kernel.source.split("_consts(n, dt)\n")[1])  # the numpy (examples as columns)
params, history = sg.train(net, X, Y, optimizer="sgd", lr=0.5, epochs=200, batch_size=len(X),
                           seed=0, quiet=True)
w, b = params["W1"][0], params["b1"][0]
# the same gradient by hand, as the notes write it
p = 1 / (1 + np.exp(-(X @ w + b)))
_, grads = kernel(params, X, Y)
assert np.allclose(grads["W1"][0], X.T @ (p - Y) / len(X)) and np.isclose(grads["b1"][0], (p - Y).mean())
acc = ((p > 0.5) == (Y > 0.5)).mean()
print(f"loss {history[0]:.4f} → {history[-1]:.4f}; w = {np.round(w, 3)}, b = {b:.3f}; "
      f"training accuracy {acc:.1%}")
raise SystemExit(0 if acc > 0.85 else 1)
