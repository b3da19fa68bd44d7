"""Discrete fractional Fourier transform: the defining properties, to tight tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.features.frft import dfrft, dfrft_matrix, hermite_eigenvectors

SIZES = [1, 2, 5, 8, 31, 64, 400]


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) + 1j * rng.standard_normal(n)


@pytest.mark.parametrize("n", SIZES)
def test_order_zero_is_identity(n: int) -> None:
    np.testing.assert_allclose(dfrft_matrix(n, 0.0), np.eye(n), atol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_order_one_is_unitary_dft(n: int) -> None:
    x = _signal(n)
    np.testing.assert_allclose(dfrft(x, 1.0), np.fft.fft(x, norm="ortho"), atol=1e-11)


@pytest.mark.parametrize("n", SIZES)
def test_order_two_is_parity_and_four_is_identity(n: int) -> None:
    x = _signal(n, 1)
    np.testing.assert_allclose(dfrft(x, 2.0), x[(-np.arange(n)) % n], atol=1e-11)
    np.testing.assert_allclose(dfrft(x, 4.0), x, atol=1e-11)
    np.testing.assert_allclose(dfrft(x, -1.0), np.fft.ifft(x, norm="ortho"), atol=1e-11)


@pytest.mark.parametrize("n", [7, 64, 400])
@pytest.mark.parametrize(("a", "b"), [(0.3, 0.45), (0.5, 0.5), (1.7, -0.2), (0.9, 3.6)])
def test_additivity(n: int, a: float, b: float) -> None:
    x = _signal(n, 2)
    np.testing.assert_allclose(dfrft(dfrft(x, a), b), dfrft(x, a + b), atol=1e-11)


@pytest.mark.parametrize("n", [8, 63, 400])
@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9, 1.3])
def test_energy_preserved_and_matrix_unitary(n: int, alpha: float) -> None:
    x = _signal(n, 3)
    assert np.linalg.norm(dfrft(x, alpha)) == pytest.approx(np.linalg.norm(x), rel=1e-12)
    m = dfrft_matrix(n, alpha)
    np.testing.assert_allclose(m @ m.conj().T, np.eye(n), atol=1e-11)


def test_fractional_order_is_genuinely_between_time_and_frequency() -> None:
    x = _signal(64, 4)
    half = dfrft(x, 0.5)
    assert np.abs(half - x).max() > 0.1
    assert np.abs(half - np.fft.fft(x, norm="ortho")).max() > 0.1


def test_eigenvectors_orthonormal_with_hermite_orders() -> None:
    vectors, orders = hermite_eigenvectors(8)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(8), atol=1e-12)
    assert orders.tolist() == [0, 1, 2, 3, 4, 5, 6, 8]  # even N skips order N-1
    assert hermite_eigenvectors(7)[1].tolist() == list(range(7))


def test_matrix_is_cached_and_read_only() -> None:
    assert dfrft_matrix(64, 0.5) is dfrft_matrix(64, 0.5)
    assert not dfrft_matrix(64, 0.5).flags.writeable


def test_along_axis() -> None:
    x = np.stack([_signal(16, 5), _signal(16, 6)])
    np.testing.assert_allclose(dfrft(x.T, 1.0, axis=0).T, np.fft.fft(x, axis=1, norm="ortho"), atol=1e-11)
