"""The XOR network of the CS/DS 541 slides: 2-2-1, ReLU hidden layer, identity output, MSE.

    symgrad handout examples/handouts/xor.py -o xor.pdf
"""
import symgrad as sg

net = sg.mlp([2, 2, 1], hidden="relu", output="identity", loss="mse")
handout_options = {"level": "both"}
