"""Discrete fractional Fourier transform (DFRFT) by eigendecomposition (Candan, Kutay & Ozaktas, 2000).

The DFRFT of order ``a`` is ``F^a = V diag(exp(-i pi/2 a k)) V^T``, where the columns of ``V``
are the eigenvectors of the matrix ``S`` that commutes with the DFT matrix (discrete analogues
of Hermite-Gauss functions), ordered by their Hermite order ``k``. ``S`` is the circulant matrix
with ones at offsets +-1 plus ``diag(2 cos(2 pi n / N))``. Eigenvectors are computed separately
in the even and odd subspaces (the P-matrix split of Candan et al.), so each has a definite parity
and sorting by eigenvalue gives its order: even vectors get ``k = 0, 2, 4, ...``, odd vectors
``k = 1, 3, ...``; for even ``N`` the orders are ``0..N-2`` and ``N`` (``N-1`` is skipped).

Properties (tested): ``F^0 = I``, ``F^1`` is the unitary DFT (``np.fft.fft(x, norm="ortho")``),
``F^2`` is parity ``x[n] -> x[-n mod N]``, ``F^4 = I``, ``F^a F^b = F^(a+b)``, and ``F^a`` is unitary.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def hermite_eigenvectors(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Real orthonormal eigenvectors ``V [n, n]`` of Candan's ``S`` and their Hermite orders ``k [n]``."""
    if n < 1:
        raise ValueError(f"DFRFT size must be >= 1, got {n}")
    idx = np.arange(n)
    s = np.zeros((n, n))
    s[idx, (idx + 1) % n] += 1.0
    s[idx, (idx - 1) % n] += 1.0
    s[idx, idx] += 2.0 * np.cos(2.0 * np.pi * idx / n)
    # P maps to even (first n//2+1 rows) and odd (remaining rows) coordinates; orthogonal.
    p = np.zeros((n, n))
    p[0, 0] = 1.0
    half = n // 2
    even_n = n % 2 == 0
    for i in range(1, half + 1 - even_n):
        p[i, i] = p[i, n - i] = 1.0 / np.sqrt(2.0)
    if even_n:
        p[half, half] = 1.0
    for i in range(half + 1, n):
        p[i, i] = -1.0 / np.sqrt(2.0)
        p[i, n - i] = 1.0 / np.sqrt(2.0)
    cs = p @ s @ p.T
    n_even = half + 1
    ev_even, vec_even = np.linalg.eigh(cs[:n_even, :n_even])
    ev_odd, vec_odd = np.linalg.eigh(cs[n_even:, n_even:])
    # Largest eigenvalue = lowest Hermite order.
    vec_even = p[:n_even].T @ vec_even[:, np.argsort(-ev_even)]
    vec_odd = p[n_even:].T @ vec_odd[:, np.argsort(-ev_odd)]
    orders_even = 2 * np.arange(vec_even.shape[1])
    orders_odd = 2 * np.arange(vec_odd.shape[1]) + 1
    vectors = np.concatenate([vec_even, vec_odd], axis=1)
    orders = np.concatenate([orders_even, orders_odd])
    # Even N: n//2+1 even vectors reach order N and n//2-1 odd ones stop at N-3, so N-1 is skipped.
    sort = np.argsort(orders, kind="stable")
    return vectors[:, sort], orders[sort]


@lru_cache(maxsize=32)
def _dfrft_matrix_cached(n: int, alpha: float) -> np.ndarray:
    vectors, orders = hermite_eigenvectors(n)
    phases = np.exp(-0.5j * np.pi * alpha * orders)
    matrix = (vectors * phases) @ vectors.T
    matrix.setflags(write=False)
    return matrix


def dfrft_matrix(n: int, alpha: float) -> np.ndarray:
    """The ``n x n`` complex DFRFT matrix of order ``alpha`` (cached per ``(n, alpha)``, read-only)."""
    return _dfrft_matrix_cached(int(n), float(alpha))


def dfrft(x: np.ndarray, alpha: float, axis: int = -1) -> np.ndarray:
    """DFRFT of order ``alpha`` along ``axis`` (unitary; ``alpha=1`` is ``np.fft.fft(..., norm="ortho")``)."""
    x = np.asarray(x)
    moved = np.moveaxis(x, axis, -1)
    out = moved @ dfrft_matrix(moved.shape[-1], alpha).T
    return np.moveaxis(out, -1, axis)
