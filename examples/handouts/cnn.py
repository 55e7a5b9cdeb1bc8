"""A small convolutional network, as a course on CNNs hands it out: a 1 × 5 × 5 image, a 2×2
convolution of two channels (z = W ⋆ x + b: the dense layer W applied to every patch, its
Jacobian T(W) and I ⊗ U(x)), relu, a 2×2 max pool (the Jacobian S(h) with one 1 a row: each
window's g goes to its maximum), flatten, and a dense softmax layer with cross-entropy. The
backward pass reads as the notes': ∇W = mat(g) U(x), ∇b = mat(g) 𝟏, g ← T(W)ᵀ g."""
import symgrad as sg

net = sg.Network()
x = net.input("x", shape=(1, 5, 5))
h = net.max_pool2d(net.act(net.conv2d(x, 2, 2), "relu"), 2)
net.set_loss(net.act(net.dense(net.flatten(h), 3), "softmax"), "cross_entropy")
