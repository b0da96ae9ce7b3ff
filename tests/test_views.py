import numpy as np
import pytest
import torch

from inference.errors import InputError
from inference.views import FlowChannels, make_view, make_views, mirror, parse_views, view_columns


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


# ------------------------------------------------------------ flow inputs: u reflected about its zero where mirrored


@pytest.mark.parametrize("width", [8, 9])
def test_flow_views_negate_u_in_the_mirrored_half_only(width):
    rng = np.random.default_rng(width)
    uv = rng.normal(0, 1, (3, 5, width, 3)).astype(np.float32)  # (T, H, W, C): u, v, strain
    c = width // 2
    o, left, r = make_views(uv, "OLR", flow=FlowChannels())
    assert o is uv
    rgb_l, rgb_r = make_views(uv, "LR")  # the same gather as an RGB clip ...
    np.testing.assert_array_equal(left[..., 1:], rgb_l[..., 1:])  # ... v and strain exactly so
    np.testing.assert_array_equal(r[..., 1:], rgb_r[..., 1:])
    np.testing.assert_array_equal(left[:, :, : width - c, 0], rgb_l[:, :, : width - c, 0])  # the kept half: u as is
    np.testing.assert_array_equal(left[:, :, width - c:, 0], -rgb_l[:, :, width - c:, 0])  # the mirror: u negated
    np.testing.assert_array_equal(r[:, :, c:, 0], rgb_r[:, :, c:, 0])
    np.testing.assert_array_equal(r[:, :, :c, 0], -rgb_r[:, :, :c, 0])
    # a symmetric motion field (u odd, v even about the midline) has views equal to itself
    x = np.arange(width) - (width - 1) / 2
    sym = np.stack(np.broadcast_arrays(x[None, :] * 0.1, np.ones((4, 1)) * np.abs(x)[None, :], x[None, :] ** 2), -1)
    for view in make_views(sym, "LR", flow=FlowChannels()):
        np.testing.assert_allclose(view, sym)
    # a full mirror is its own inverse, u negated everywhere
    m = mirror(uv, flow=FlowChannels())
    np.testing.assert_array_equal(m[..., 0], -uv[:, :, ::-1, 0])
    np.testing.assert_array_equal(mirror(m, flow=FlowChannels()), uv)


def test_stored_flow_images_reflect_about_their_zero():
    img = np.array([[[0, 10, 3], [100, 20, 4], [128, 30, 5], [200, 40, 6]]], np.uint8)  # (H=1, W=4, 3)
    left = make_view(img, "L", flow=FlowChannels(zero=128))
    assert left[0, :, 0].tolist() == [0, 100, 156, 255]  # 2·128 − 100 = 156; 2·128 − 0 = 256 → 255 (clipped)
    assert left[0, :, 1].tolist() == [10, 20, 20, 10] and left.dtype == np.uint8
    # one zero per image of a batch (e.g. min-max images' measured zeros), broadcast over H, W, C
    batch = np.stack([img, img])  # (N, H, W, 3)
    zeros = np.array([100.0, 50.5]).reshape(2, 1, 1, 1)
    right = make_view(batch, "R", flow=FlowChannels(zero=zeros))
    assert right[0, 0, :, 0].tolist() == [2 * 100 - 200, 2 * 100 - 128, 128, 200]
    assert right[1, 0, :, 0].tolist() == [0, 0, 128, 200]  # 101 − 200 and 101 − 128 clip at 0


@pytest.mark.parametrize("width", [112, 113])
def test_flow_views_torch_batches_match_numpy(width):
    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, (2, 3, 4, width, 3), dtype=np.uint8)  # N, T, H, W, C
    batch = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()  # N, C, T, H, W (uint8)
    for dtype, np_dtype in ((torch.uint8, np.uint8), (torch.float32, np.float32)):  # uint8 clips at 255, float not
        views = make_views(batch.to(dtype), "OLR", flow=FlowChannels(zero=128))  # channel axis 1 by default
        for letter, v in zip("OLR", views):
            assert v.dtype == dtype
            for n in range(2):
                expected = make_view(clips[n].astype(np_dtype), letter, flow=FlowChannels(zero=128))
                np.testing.assert_array_equal(v[n].permute(1, 2, 3, 0).numpy(), expected)
    # autograd passes through a flow view (the schemes build views inside the network's graph)
    x = batch.float().requires_grad_()
    make_view(x, "L", flow=FlowChannels(zero=128)).sum().backward()
    assert x.grad is not None and set(x.grad.unique().tolist()) <= {-1.0, 0.0, 1.0, 2.0}


def test_flow_views_errors():
    x = np.zeros((2, 6, 3), np.float32)
    with pytest.raises(InputError, match="width axis"):
        make_view(x, "L", flow=FlowChannels(axis=-2))
    with pytest.raises(InputError, match="outside the 3 channels"):
        make_view(x, "L", flow=FlowChannels(u=3))
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        make_view([[1, 2]], "L")
