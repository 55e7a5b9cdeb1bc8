"""One step of an LSTM cell, as torch.nn.LSTM computes it, from symgrad's ops: the four gates are
dense layers of the input x and the previous state h0 (with their own biases, as torch's b_ih
and b_hh), sigmoid or tanh, then the gates mul'ed in: c = f ⊙ c0 + i ⊙ g, h = o ⊙ tanh(c), and a
linear read-out with the squared error. The handout derives every gate's weights by the chain
through the gates (∂c/∂i = diag(g), ∂h/∂o = diag(tanh(c)) …)."""
import symgrad as sg

D, H = 2, 2
net = sg.Network()
x, h0, c0 = net.input("x", D), net.input("h0", H), net.input("c0", H)
pre = {k: net.add(net.dense(x, H, W=f"W_i{k}", b=f"b_i{k}", name=f"a{k}"),
                  net.dense(h0, H, W=f"W_h{k}", b=f"b_h{k}", name=f"r{k}"), name=f"s{k}")
       for k in ("i", "f", "g", "o")}
i, f, o = (net.act(pre[k], "sigmoid", name=k) for k in ("i", "f", "o"))
g = net.act(pre["g"], "tanh", name="g")
c = net.add(net.mul(f, c0, name="fc"), net.mul(i, g, name="ig"), name="c")
h = net.mul(o, net.act(c, "tanh", name="tc"), name="h")
net.set_loss(net.dense(h, 1, W="W_y", b="b_y", name="yhat"), "mse")
handout_options = {"level": "matrix", "exercises": True}
