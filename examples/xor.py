"""The slides' 2-2-1 network learns XOR: sigmoid hidden units, a sigmoid output, binary
cross-entropy, full-batch gradient descent with momentum. Run: python examples/xor.py"""
import numpy as np

import symgrad as sg

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
Y = np.array([0, 1, 1, 0], dtype=float)

net = sg.mlp([2, 2, 1], hidden="sigmoid", output="sigmoid", loss="bce")
print(net.compile().scalar_source(4).splitlines()[7], "…  (the unrolled kernel for 4 examples)")
params, history = sg.train(net, X, Y, optimizer="momentum", lr=0.5, epochs=1000, batch_size=4,
                           seed=0)
print(f"loss {history[0]:.4f} → {history[-1]:.4f}; gradcheck {float(sg.gradcheck(net, params)):.1e}")
p = net.predict(params, X)[:, 0]
for x, y, q in zip(X, Y, p):
    print(f"  x = {x.astype(int)}  target {int(y)}  output {q:.3f}  {'right' if (q > 0.5) == y else 'WRONG'}")
right = int(((p > 0.5) == (Y > 0.5)).sum())
print(f"{right}/4 right")
raise SystemExit(0 if right == 4 else 1)
