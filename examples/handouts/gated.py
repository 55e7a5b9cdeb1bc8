"""A gate, a stack and a layer norm: a = tanh(W1 x + b1), b = σ(W2 x + b2), g = a ⊙ b (the
elementwise gate of GLU and LSTM cells), c = [g; x], then layer norm (γ ⊙ x̂ + β) and a linear
output with the squared error. The chain shows each op's Jacobian: diag(b), [I; 0] and layer
norm's (I − 𝟏𝟏ᵀ/d − x̂x̂ᵀ/d)/σ."""
import symgrad as sg

net = sg.Network()
x = net.input("x", 2)
a = net.act(net.dense(x, 2), "tanh", name="a")
b = net.act(net.dense(x, 2), "sigmoid", name="b")
g = net.mul(a, b, name="g")
c = net.concat(g, x, name="c")
ln = net.layer_norm(c, name="ln")
net.set_loss(net.dense(ln, 1, name="yhat"), "mse")
