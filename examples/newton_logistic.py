"""Newton's method for L2-regularised logistic regression on scikit-learn's bundled breast-cancer
data, from the gradient and Hessian symgrad derives in matrix form:

    f(w) = Σ log(1 + exp(−y ⊙ Xw)) + ½ wᵀ P w        (y ∈ {−1, +1}, X with a column of ones,
                                                      P = I with 0 for the intercept)
    ∇f = −Xᵀ(σ(−Xw ⊙ y) ⊙ y) + P w,   H = Xᵀ diag(σ ⊙ (1 − σ) ⊙ y²) X + P

The same optimum as scikit-learn's LogisticRegression(C=1), whose objective is
½‖coef‖² + C Σ log(1 + exp(−y (x·coef + b))), in at most 10 Newton steps.
Needs scikit-learn. Run: python examples/newton_logistic.py"""
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import symgrad as sg
from symgrad.printing.text import TextPrinter

t0 = time.perf_counter()
d = sg.hessian("sum(log(1 + exp(-y .* (X*w)))) + 0.5*w'*P*w", "w",
               vectors="w y", matrices="X", symmetric="P")
step = d.compile()  # (f, ∇f, H) at once
derive_s = time.perf_counter() - t0
print("∇f =", TextPrinter().doprint(d.meta["gradient"]))
print("H  =", TextPrinter().doprint(d.result))

data = load_breast_cancer()
Xs = StandardScaler().fit_transform(data.data)
X = np.hstack([Xs, np.ones((len(Xs), 1))])  # the intercept as a last weight
y = np.where(data.target == 1, 1.0, -1.0)
P = np.eye(X.shape[1])
P[-1, -1] = 0.0                              # the intercept is not penalised, as in sklearn

w = np.zeros(X.shape[1])
for it in range(1, 11):
    f, g, H = step(X=X, y=y, w=w, P=P)
    w = w - np.linalg.solve(H, g)
    print(f"step {it}: f = {f:.10f}, |∇f| = {np.linalg.norm(g):.2e}")
    if np.linalg.norm(g) < 1e-8:
        break
f, g, _ = step(X=X, y=y, w=w, P=P)

ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(Xs, data.target)
w_ref = np.append(ref.coef_.ravel(), ref.intercept_)
gap = np.max(np.abs(w - w_ref)) / np.max(np.abs(w_ref))
print(f"derived and compiled in {derive_s:.2f}s; {it} Newton steps; |∇f| = {np.linalg.norm(g):.1e}")
print(f"largest difference from scikit-learn's LogisticRegression: {gap:.1e} (relative)")
raise SystemExit(0 if it <= 10 and gap < 1e-5 else 1)
