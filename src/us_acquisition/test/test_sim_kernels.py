"""The simulator's compiled inner loops agree with scipy / numpy on every edge case."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from us_acquisition.sim import kernels


@pytest.mark.parametrize("shape", [(1, 1), (3, 40), (40, 3), (48, 64)])
@pytest.mark.parametrize("n", [1, 3, 9, 17])
def test_correlations_match_scipy_nearest(shape: tuple[int, int], n: int) -> None:
    rng = np.random.default_rng(n * 100 + shape[0])
    src = rng.normal(size=shape).astype(np.float32) * 100
    k = rng.random(n).astype(np.float32)  # not symmetric: the orientation is checked too
    for axis, fn in ((0, kernels.correlate_rows), (1, kernels.correlate_cols)):
        out = np.full_like(src, np.nan)
        fn(src, k, out)
        want = ndimage.correlate1d(src.astype(np.float64), k, axis=axis, mode="nearest")
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-3)


def test_lateral_correlation_works_in_place() -> None:
    rng = np.random.default_rng(5)
    src = rng.random((6, 30)).astype(np.float32)
    k = np.array([0.2, 0.5, 0.3], np.float32)
    want = ndimage.correlate1d(src, k, axis=1, mode="nearest")
    kernels.correlate_cols(src, k, src)
    np.testing.assert_allclose(src, want, rtol=1e-6)


def test_exclusive_cumulative_sum_down_columns() -> None:
    src = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = np.full_like(src, np.nan)
    kernels.cumsum_rows_exclusive(src, out)
    want = np.vstack([np.zeros((1, 3)), np.cumsum(src, axis=0)[:-1]])
    np.testing.assert_array_equal(out, want)


def test_kernels_are_compiled_when_numba_is_installed() -> None:
    pytest.importorskip("numba")
    assert kernels.HAVE_NUMBA
    assert kernels.warmup() < 30.0
    assert hasattr(kernels.correlate_cols, "signatures")  # a numba dispatcher, not scipy
