"""A transformer block, small enough to read: tokens embedded (e = Eᵀ onehot(tok)), a pre-norm
causal self-attention of two heads (scores s_t = K q_t/√d_k with the causal mask, the row-wise
softmax and its Jacobian diag(a) − a aᵀ, the output Vᵀ a) added back to its input, then a pre-norm
position-wise MLP (dense, relu, dense) added back too, and a softmax over the vocabulary at each
position with cross-entropy. The chain is printed for one position t; the first step says which
nodes read the whole sequence."""
import symgrad as sg

net = sg.Network()
tok = net.input("tok", shape=(4,), tokens=6)
h = net.embedding(tok, 4)
h = net.add(h, net.self_attention(net.layer_norm(h), 2, causal=True))
m = net.dense(net.act(net.dense(net.layer_norm(h), 8), "relu"), 4)
h = net.add(h, m)
net.set_loss(net.act(net.dense(h, 6), "softmax"), "cross_entropy")
