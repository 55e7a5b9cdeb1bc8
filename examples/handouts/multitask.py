"""A multi-task network: one relu trunk, two heads with a loss each, ℓ = ℓ₁ + ½ ℓ₂.

    symgrad handout examples/handouts/multitask.py -o multitask.pdf
    symgrad derive examples/handouts/multitask.py --wrt W1

The trunk h1 feeds a regression head (a number, mse) and a classifier over two classes (softmax,
cross-entropy, weighted ½). The backward pass sums what both heads pass back into h1; each head's
own gradient is ŷ − y of its term (the classifier's fused with its softmax), times its weight.
Targets are a dict {"reg": (n, 1) array, "cls": (n,) labels}.
"""
import symgrad as sg

net = sg.Network()
x = net.input("x", 2)
h = net.act(net.dense(x, 3), "relu", name="h1")
reg = net.dense(h, 1, name="reg")
cls = net.act(net.dense(h, 2), "softmax", name="cls")
net.add_loss(reg, "mse")
net.add_loss(cls, "cross_entropy", weight=0.5)

handout_options = {"level": "both"}
