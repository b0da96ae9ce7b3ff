import numpy as np
import pytest
import torch

from inference.errors import InputError
from inference.views import make_view, make_views, parse_views, view_columns


@pytest.mark.parametrize("width", [8, 9, 112, 113])
def test_view_invariants_numpy(width):
    rng = np.random.default_rng(width)
    clip = rng.integers(0, 256, (5, 7, width, 3), dtype=np.uint8)
    o, left, r = make_views(clip, "OLR")
    c = width // 2
    assert o is clip  # O is the clip itself, no copy
    assert left.shape == r.shape == clip.shape
    # both views are mirror-symmetric about the centre
    np.testing.assert_array_equal(left, left[:, :, ::-1])
    np.testing.assert_array_equal(r, r[:, :, ::-1])
    # L keeps O's left half (and the odd centre column), R keeps O's right half
    keep = c + width % 2
    np.testing.assert_array_equal(left[:, :, :keep], clip[:, :, :keep])
    np.testing.assert_array_equal(r[:, :, c:], clip[:, :, c:])
    # the other half is the mirror of the kept half
    np.testing.assert_array_equal(left[:, :, width - c:], clip[:, :, :c][:, :, ::-1])
    np.testing.assert_array_equal(r[:, :, :c], clip[:, :, width - c:][:, :, ::-1])


def test_odd_width_keeps_centre_column_once():
    cols_l = view_columns(5, "L")
    cols_r = view_columns(5, "R")
    assert cols_l.tolist() == [0, 1, 2, 1, 0]
    assert cols_r.tolist() == [4, 3, 2, 3, 4]
    assert view_columns(4, "L").tolist() == [0, 1, 1, 0]
    assert view_columns(4, "R").tolist() == [3, 2, 2, 3]


@pytest.mark.parametrize("width", [112, 113])
def test_torch_batches_match_numpy(width):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (2, 4, 6, width, 3), dtype=np.uint8)  # N, T, H, W, C
    batch = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float()  # N, C, T, H, W
    views = make_views(batch, "OLR")
    assert views[0] is batch
    for letter, v in zip("OLR", views):
        assert v.shape == batch.shape
        for n in range(2):
            expected = make_view(clips[n], letter)  # (T, H, W, C), width axis -2
            np.testing.assert_array_equal(v[n].permute(1, 2, 3, 0).numpy(), expected)


def test_explicit_axis_and_errors():
    x = np.arange(2 * 6).reshape(2, 6)
    assert make_view(x, "L", axis=1).tolist() == [[0, 1, 2, 2, 1, 0], [6, 7, 8, 8, 7, 6]]
    assert parse_views("olr") == "OLR" and parse_views("LR") == "LR"
    for bad in ["", "OX", "OO", "LRL", "abc"]:
        with pytest.raises(InputError, match="view set"):
            parse_views(bad)
    with pytest.raises(InputError):
        make_view(x, "LR")
