"""Backends: one registration per target the typed program is printed for.

Where it sits: compile (above derive). A :class:`Backend` says how a network's
:class:`~symgrad.core.program.Program` becomes a kernel ``kernel(params, X, Y) -> (loss, grads)``;
``compile_network(net, backend=...)`` looks it up here and nowhere else, and an unknown name fails
listing the registered ones. Each backend is a module of symgrad.compile that ends with its own
``register_backend(...)`` line (numpy and python in :mod:`.kernel`); the program, the argument
checks (:class:`.spec.Spec`) and the stable forms are shared, only the printing differs. The
array backends (jax, torch, cupy: :mod:`.jax_backend`, :mod:`.torch_backend`, :mod:`.cupy_backend`)
print the same program functionally (:mod:`.arrays`), each with one table of per-primitive code,
and give ``function`` too: ``compile_function(..., backend=...)``. They import their framework only
when first used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Backend:
    """``network(net, scalar, at0) -> kernel``: compile a network's program for this target
    (``scalar`` the tiny-net option, ``at0`` relu'(0)); ``words`` says what runs. ``function``
    (optional): ``function(what, M, shape, k, at0) -> fn(P)``, a matrix M of expressions in
    ``_v0 … _v{k-1}`` (already in stable forms) evaluated at points P (…, k) into (…, *shape), for
    ``compile_function``; None: numpy's own (the numpy backend). ``matrix`` (optional):
    ``matrix() -> printer``, the :class:`~symgrad.compile.mfunction.MatrixPrinter` of
    matrix-calculus results (``sg.grad(...).compile(backend=...)``) for this target."""

    name: str
    network: Callable
    words: str
    function: Callable | None = None
    matrix: Callable | None = None


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, replace: bool = False) -> Backend:
    if backend.name in BACKENDS and not replace:
        raise TypeError(f"register_backend: {backend.name!r} is already registered (replace=True "
                        "replaces it)")
    if not (backend.name and callable(backend.network) and backend.words):
        raise TypeError(f"register_backend: {backend.name!r} needs a name, a network compiler "
                        "and words saying what runs")
    BACKENDS[backend.name] = backend
    return backend


def backend_named(name) -> Backend:
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"backend: {name!r} is not registered; the backends are "
                         f"{', '.join(map(repr, BACKENDS))}") from None


__all__ = ["Backend", "BACKENDS", "register_backend", "backend_named"]
