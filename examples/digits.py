"""scikit-learn's bundled 8×8 digits with a 64-32-10 network: ReLU hidden units, softmax outputs,
cross-entropy, adam on minibatches of 32. Needs scikit-learn. Run: python examples/digits.py
(SYMGRAD_EPOCHS=n shortens the run.)"""
import os
import time

import symgrad as sg
from symgrad.run.train import accuracy, load_data

data = load_data("digits", "cross_entropy")  # X scaled to [0, 1]; a stratified 75/25 split
net = sg.mlp([64, 32, 10], hidden="relu", output="softmax", loss="cross_entropy")
epochs = int(os.environ.get("SYMGRAD_EPOCHS", 50))
t = time.perf_counter()
params, history = sg.train(net, data["X"], data["Y"], optimizer="adam", lr=0.003, epochs=epochs,
                           batch_size=32, seed=0)
seconds = time.perf_counter() - t
acc = accuracy(net, params, data["X_test"], data["Y_test"])
print(f"{len(data['X'])} training digits, {epochs} epochs in {seconds:.1f}s, loss {history[-1]:.4f}")
print(f"test accuracy {acc:.2%} on {len(data['X_test'])} digits")
if os.environ.get("SYMGRAD_SAVE"):
    sg.save_params(os.environ["SYMGRAD_SAVE"], params)
raise SystemExit(0 if acc >= 0.97 or epochs < 50 else 1)
