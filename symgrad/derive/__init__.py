"""derive: the engines that differentiate (above graph).

:mod:`.backprop` (the backward pass over a Graph, Algorithm 6.4 and the batch program),
:mod:`.matrix` (the chain of Jacobians simplified to the backprop form), :mod:`.element` (unit by
unit, the notes' w1…w6 and δ), :mod:`.calculus` (Jacobians, gradients and the chain rule of plain
functions), :mod:`.hessian` (second derivatives of a scalar function, on calculus's gradient),
:mod:`.indexed` (the index level: a one-hidden-layer net's gradient entry in symbolic indices, ESL's
δ_ki and s_mi, checked at every concrete index of small nets), :mod:`.cost` (the sum or the mean
over the examples, for the matrix and element levels).
Each produces :class:`~symgrad.core.derivation.Derivation` records; nothing here prints or
compiles.
"""
