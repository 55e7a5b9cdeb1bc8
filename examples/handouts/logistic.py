"""Logistic regression as a 2-1 network: a sigmoid output and the binary cross-entropy."""
import symgrad as sg

net = sg.mlp([2, 1], output="sigmoid", loss="bce")
handout_options = {"level": "both"}
