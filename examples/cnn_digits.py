"""A small convolutional network on scikit-learn's bundled 8×8 digits: conv 3×3 (16 channels) →
relu → max pool 2 → conv 3×3 (32) → relu → max pool 2 → flatten → dense → softmax, cross-entropy,
adam on minibatches of 32 — torch.nn.Conv2d's and MaxPool2d's semantics and parameter layout.
Needs scikit-learn. Run: python examples/cnn_digits.py (SYMGRAD_EPOCHS=n shortens the run.)"""
import os
import time

import numpy as np

import symgrad as sg
from symgrad.run.train import accuracy, load_data

data = load_data("digits", "cross_entropy")  # X scaled to [0, 1]; a stratified 75/25 split
image = lambda X: X.reshape(-1, 1, 8, 8)     # each row of 64 pixels as a 1 × 8 × 8 image

net = sg.Network()
x = net.input("x", shape=(1, 8, 8))
h = net.max_pool2d(net.act(net.conv2d(x, 16, 3, padding=1), "relu"), 2)   # 16 × 4 × 4
h = net.max_pool2d(net.act(net.conv2d(h, 32, 3, padding=1), "relu"), 2)   # 32 × 2 × 2
net.set_loss(net.act(net.dense(net.flatten(h), 10), "softmax"), "cross_entropy")

epochs = int(os.environ.get("SYMGRAD_EPOCHS", 30))
t = time.perf_counter()
params, history = sg.train(net, image(data["X"]), data["Y"], optimizer="adam", lr=0.003,
                           epochs=epochs, batch_size=32, seed=0)
seconds = time.perf_counter() - t
acc = accuracy(net, params, image(data["X_test"]), data["Y_test"])
print(f"{len(data['X'])} training digits, {epochs} epochs in {seconds:.1f}s, loss {history[-1]:.4f}")
print(f"test accuracy {acc:.2%} on {len(data['X_test'])} digits")
raise SystemExit(0 if acc >= 0.98 or epochs < 30 else 1)
