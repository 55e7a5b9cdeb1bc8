"""A 784-256-128-10 classifier: ReLU hidden layers, softmax output, cross-entropy (matrix level)."""
import symgrad as sg

net = sg.mlp([784, 256, 128, 10], hidden="relu", output="softmax", loss="cross_entropy")
handout_options = {"level": "matrix"}
