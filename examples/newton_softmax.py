"""Newton's method for L2-regularised softmax (multinomial logistic) regression on scikit-learn's
bundled digits (1797 images of 8×8 pixels, 10 classes), from the Hessian symgrad derives in
matrix form:

    f(W) = −Σ Y ⊙ log softmax(XW) + ½ tr(WᵀW)     (Y one-hot, X with a column of ones)
    ∇f  = Xᵀ(diag(Y𝟏) softmax(XW) − Y) + W        (Y𝟏 = 𝟏 for one-hot rows)
    H   = (Xᵀ diag(Y𝟏) ⊗ I) blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ) (X ⊗ I) + I,   S = softmax(XW)

H is the k-class form of logistic regression's Xᵀ diag(σ ⊙ (1 − σ)) X: 650 × 650 here, computed
block by block (the 17970 × 17970 block-diagonal middle is never formed). The same optimum as
scikit-learn's LogisticRegression(C=1) on the same columns (its objective is
½‖W‖² + C Σ cross-entropy; the intercept is the column of ones, penalised like every weight, so
both are fitted with fit_intercept=False), in at most 10 Newton steps, through
``sg.train(d, data, None, optimizer="newton")``.
Needs scikit-learn. Run: python examples/newton_softmax.py"""
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import symgrad as sg
from symgrad.printing.text import TextPrinter

t0 = time.perf_counter()
d = sg.hessian("-sum(Y .* log(softmax(X*W))) + 0.5*tr(W'*W)", "W", matrices="X W Y")
derive_s = time.perf_counter() - t0
print("∇f =", TextPrinter().doprint(d.meta["gradient"]))
print("H  =", TextPrinter().doprint(d.result))

digits = load_digits()
Xs = StandardScaler().fit_transform(digits.data)
X = np.hstack([Xs, np.ones((len(Xs), 1))])  # the intercept as a last row of W
Y = np.eye(10)[digits.target]

t0 = time.perf_counter()
params, history = sg.train(d, {"X": X, "Y": Y}, None, optimizer="newton", epochs=10)
train_s = time.perf_counter() - t0
W = params["W"]
f, g, _ = d.compile()(X=X, Y=Y, W=W)

ref = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(
    X, digits.target)
W_ref = ref.coef_.T
gap = np.max(np.abs(W - W_ref)) / np.max(np.abs(W_ref))
steps = len(history)
print(f"derived in {derive_s:.2f}s; {steps} Newton steps in {train_s:.2f}s; "
      f"|∇f| = {np.linalg.norm(g):.1e}; training accuracy "
      f"{np.mean((X @ W).argmax(axis=1) == digits.target):.3f}")
print(f"largest difference from scikit-learn's LogisticRegression: {gap:.1e} (relative)")
raise SystemExit(0 if steps <= 10 and gap < 1e-5 else 1)
