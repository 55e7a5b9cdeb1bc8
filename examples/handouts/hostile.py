"""A network whose names are hostile to LaTeX: every one must come out escaped, never as TeX."""
import symgrad as sg

net = sg.Network()
x = net.input("x_&%#", 2)
z = net.dense(x, 2, W=r"\input{/etc/passwd}", b="b$^~{", name="z}{%")
h = net.act(z, sg.activation("x/(1 + abs(x))", name=r"soft\sign}"), name="h_\\end{document}")
y = net.dense(h, 1, W="W#2", b="b2", name="out^^M")
net.set_loss(y, "mse")
handout_options = {"level": "both"}
