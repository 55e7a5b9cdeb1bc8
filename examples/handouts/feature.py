"""The feature-discovery network of the notes, in their notation: inputs x, a hidden layer of
features ẋ = a(π̇) with weights Ẇ, the output o = σ(π̈) with weights Ẅ; no biases.

    symgrad handout examples/handouts/feature.py --notation feature -o feature.pdf
"""
import symgrad as sg

net = sg.Network()
x = net.input("x", 3)
h = net.act(net.dense(x, 3, b=False), "relu")
o = net.act(net.dense(h, 1, b=False), "sigmoid", name="yhat")
net.set_loss(o, "bce")
handout_options = {"notation": "feature", "level": "both"}
