import numpy as np
import pytest

from inference.temporal import resample, sample_positions


@pytest.mark.parametrize("n_in,n_out", [(200, 34), (10, 66), (74, 74), (2, 5), (35, 34)])
def test_keeps_first_and_last_frames(n_in, n_out):
    rng = np.random.default_rng(n_in)
    clip = rng.integers(0, 256, (n_in, 4, 4, 3), dtype=np.uint8)
    out = resample(clip, n_out)
    assert out.shape == (n_out, 4, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], clip[0])
    np.testing.assert_array_equal(out[-1], clip[-1])


def test_linear_interpolation_values():
    ramp = np.arange(5, dtype=np.float32)[:, None] * 10  # 0, 10, 20, 30, 40
    out = resample(ramp, 9)
    np.testing.assert_allclose(out[:, 0], np.arange(9) * 5.0)
    # integers round to nearest: positions 0, 1/3, 2/3, 1 between 0 and 100
    clip = np.array([0, 100], np.uint8)
    assert resample(clip, 4).tolist() == [0, 33, 67, 100]


def test_positions_and_bad_counts():
    assert sample_positions(5, 3).tolist() == [0.0, 2.0, 4.0]
    assert sample_positions(5, 1).tolist() == [2.0]
    with pytest.raises(ValueError):
        sample_positions(0, 3)
    # time can be another axis (N, C, T, H, W)
    x = np.zeros((1, 3, 7, 2, 2), np.uint8)
    x[:, :, -1] = 255
    y = resample(x, 13, axis=2)
    assert y.shape == (1, 3, 13, 2, 2) and y[0, 0, -1, 0, 0] == 255 and y[0, 0, 0, 0, 0] == 0
