"""inference.motion on the real OpenCV, with the public-domain astronaut face in known motion.

The face crops below fill the frame as an aligned face does (forehead to chin). Flow accuracy is the mean end-point
error (EPE) over the face's central region, the middle 80 % of each side (``motion.central(shape, 0.8)``): the
borders, where pixels enter or leave the crop, are left out."""

import cv2
import numpy as np
import pytest

from inference import motion
from inference.errors import InputError
from inference.inputs import build_input
from inference.views import FlowChannels, make_view, make_views, mirror

FACE_CENTRE = np.array([224.0, 130.0])  # between the astronaut's eyes and mouth, in the source image


def face_matrix(size: int, scale: float) -> np.ndarray:
    """Source → crop: the face centre at the crop centre, ``scale`` crop pixels per source pixel."""
    return np.array([[scale, 0, (size - 1) / 2 - scale * FACE_CENTRE[0]],
                     [0, scale, (size - 1) / 2 - scale * FACE_CENTRE[1]]])


def crop(image, size: int, then: np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """The face crop, optionally moved by the crop-space affine ``then`` (2×3)."""
    m = face_matrix(size, scale or 0.7 * size / 112)
    if then is not None:
        m = (np.vstack([then, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]]))[:2]
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def true_flow(then: np.ndarray, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.stack([then[0, 0] * xx + then[0, 1] * yy + then[0, 2] - xx,
                     then[1, 0] * xx + then[1, 1] * yy + then[1, 2] - yy], -1)


def epe(uv, truth, region=0.8) -> float:
    rows, cols = motion.central(uv.shape, region)
    return float(np.linalg.norm(uv[rows, cols] - truth[rows, cols], axis=-1).mean())


SHIFT = np.array([[1, 0, 0.4], [0, 1, -0.3]])  # sub-pixel translation
ROTATION = cv2.getRotationMatrix2D((55.5, 55.5), 1.5, 1.0)  # 1.5° about the centre: up to 1.9 px at the corners


@pytest.mark.parametrize("name, then", [("translation", SHIFT), ("rotation", ROTATION)])
def test_flow_recovers_known_motion(face_image, name, then):
    a, b = crop(face_image, 112), crop(face_image, 112, then)
    truth = true_flow(then, 112)
    uv = motion.flow(a, b, "tvl1")
    assert uv.shape == (112, 112, 2) and uv.dtype == np.float32
    assert epe(uv, truth) < 0.1, (name, epe(uv, truth))
    # no motion gives no flow
    assert np.abs(motion.flow(a, a, "tvl1")).max() < 0.01
    fb = motion.flow(a, b, "farneback")
    assert epe(fb, truth) < 0.4, (name, epe(fb, truth))  # Farneback: roughly
    # a grey frame gives the same flow as the RGB frame it came from (the flow runs on grey)
    if name == "translation":
        grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        np.testing.assert_allclose(motion.flow(*grey, "farneback"), fb, atol=1e-5)


def test_flow_params_recorded_and_used(face_image):
    p = motion.flow_params("tvl1", {"warps": 3})
    assert p["method"] == "tvl1" and p["warps"] == 3 and p["tau"] == 0.25 and p["nscales"] == 5
    assert motion.flow_params("TV-L1", p) == p  # a recorded dict is accepted back as is
    assert motion.flow_params("farneback")["winsize"] == 15
    a, b = crop(face_image, 48), crop(face_image, 48, SHIFT)
    few = motion.flow(a, b, "farneback", {"iterations": 1, "levels": 1, "winsize": 5})
    assert not np.allclose(few, motion.flow(a, b, "farneback"))  # the parameters reach OpenCV
    coarse = motion.flow(a, b, "tvl1", {"nscales": 1, "warps": 1, "outerIterations": 1})
    assert not np.allclose(coarse, motion.flow(a, b, "tvl1"))
    with pytest.raises(InputError, match="unknown tvl1 parameter"):
        motion.flow_params("tvl1", {"warp": 3})
    with pytest.raises(InputError, match="unknown optical-flow method"):
        motion.flow(a, b, "lucas-kanade")
    with pytest.raises(InputError, match="one size"):
        motion.flow(a, a[:40])
    with pytest.raises(InputError, match="uint8"):
        motion.flow(a.astype(np.float32), b)


def test_strain_known_answers(face_image):
    yy, xx = np.mgrid[0:20, 0:24].astype(np.float32)
    zero = np.zeros_like(xx)
    np.testing.assert_array_equal(motion.strain(np.stack([zero + 0.7, zero - 0.4], -1)), 0)  # translation
    np.testing.assert_allclose(motion.strain(np.stack([0.05 * xx, zero], -1)), 0.05, atol=1e-6)  # stretch along x
    np.testing.assert_allclose(motion.strain(np.stack([0.03 * xx, 0.03 * yy], -1)), 0.03 * np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(motion.strain(np.stack([0.04 * yy, zero], -1)), 0.04 / np.sqrt(2), atol=1e-6)  # shear
    np.testing.assert_allclose(motion.strain(np.stack([0.05 * yy, -0.05 * xx], -1)), 0, atol=1e-6)  # rotation: none
    # on the real flow of the face: a translation strains nothing, a 4 % stretch along x strains 0.04
    a = crop(face_image, 64)
    rows, cols = motion.central((64, 64), 0.6)
    moved = motion.strain(motion.flow(a, crop(face_image, 64, np.array([[1, 0, 0.5], [0, 1, 0.25]]))))
    assert np.median(moved[rows, cols]) < 0.015  # measured 0.009: TV-L1's small local errors, differentiated
    stretch = np.array([[1.04, 0, -0.04 * 31.5], [0, 1, 0]])
    stretched = motion.strain(motion.flow(a, crop(face_image, 64, stretch)))
    assert abs(np.median(stretched[rows, cols]) - 0.04) < 0.01, np.median(stretched[rows, cols])


def bump_clip(face_image, n=12, peak=7, size=48):
    """The face with a local bulge (around the mouth) that grows to ``peak`` and recedes: an apex at ``peak``."""
    a = crop(face_image, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    g = np.exp(-((xx - size * 0.6) ** 2 + (yy - size * 0.7) ** 2) / (2 * (size / 8) ** 2))
    frames = []
    for t in range(n):
        k = 1.5 * np.exp(-((t - peak) ** 2) / 6.0)
        map_x, map_y = (xx - k * g).astype(np.float32), (yy - 0.5 * k * g).astype(np.float32)
        frames.append(cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def test_estimate_apex(face_image):
    clip = bump_clip(face_image)
    assert motion.estimate_apex(clip) == 7
    assert motion.estimate_apex(clip, onset=3) == 7
    assert motion.estimate_apex(clip, method="flow") == 7
    assert motion.estimate_apex(clip, onset=11) == 11  # nothing after the onset: the onset itself
    with pytest.raises(InputError, match="outside"):
        motion.estimate_apex(clip, onset=12)
    with pytest.raises(InputError, match="both_ends"):
        motion.estimate_apex(clip, method="peak")


def test_the_apex_of_a_drifting_clip_is_the_frame_farthest_from_both_ends(face_image):
    """The real check (nine CASME II clips with coded apexes): the aligned face drifts slowly over a clip (lighting,
    the crop creeping), so the frame farthest from the onset alone is the last one on all nine. A clip that moves
    away from its onset and back, under a steady brightening: the default measure (difference to the onset plus
    difference to the last frame) finds the apex; the onset-only measure picks the last frame."""
    n, peak = 24, 9
    clip = bump_clip(face_image, n=n, peak=peak).astype(np.float32)
    drift = np.linspace(0.0, 14.0, n)[:, None, None, None]  # grey levels, first → last frame
    clip = np.clip(clip + drift, 0, 255).astype(np.uint8)
    assert abs(motion.estimate_apex(clip) - peak) <= 1
    assert abs(motion.estimate_apex(clip, method="both_ends") - peak) <= 1
    assert motion.estimate_apex(clip, method="difference") == n - 1


def test_build_input_from_recorded_settings(face_image):
    clip = bump_clip(face_image)
    assert build_input(clip)[0] is clip and build_input(clip, {"kind": "rgb"}) == (clip, None)
    scaling = motion.FlowScaling(gain=8)
    inputs = {"kind": "flow_image", "method": "farneback", "params": motion.flow_params("farneback"),
              "scaling": scaling.to_dict(), "size": 24}
    img, apex = build_input(clip, inputs)
    assert apex == 7 and img.shape == (1, 24, 24, 3)  # estimated: the bulge's peak
    np.testing.assert_array_equal(img[0], motion.flow_image(clip[0], clip[7], 24, "farneback", scaling))
    img, apex = build_input(clip, inputs, apex=3)  # annotated
    assert apex == 3
    np.testing.assert_array_equal(img[0], motion.flow_image(clip[0], clip[3], 24, "farneback", scaling))
    fc, _ = build_input(clip[:4], {"kind": "flow_clip", "method": "farneback", "reference": "onset"})
    np.testing.assert_array_equal(fc, motion.flow_clip(clip[:4], "farneback", reference="onset"))
    mag = {"kind": "magnified", "params": {"alpha": 2.0, "low_hz": 1.0, "high_hz": 4.0, "levels": 2}}
    np.testing.assert_array_equal(build_input(clip, mag, fps=25)[0], motion.magnify(clip, 25, 2.0, 1.0, 4.0, 2))
    with pytest.raises(InputError, match="frame rate"):
        build_input(clip, mag)
    with pytest.raises(InputError, match="unknown input kind"):
        build_input(clip, {"kind": "depth"})
    with pytest.raises(InputError, match="outside"):
        build_input(clip, inputs, apex=12)


def test_flow_scaling_round_trips():
    for s in (motion.FlowScaling(), motion.FlowScaling(gain=8, strain_gain=300),
              motion.FlowScaling("minmax", zero_region=0.5)):
        assert motion.FlowScaling.from_dict(s.to_dict()) == s
    rng = np.random.default_rng(0)
    uv = rng.uniform(-7.5, 7.5, (10, 12, 2)).astype(np.float32)
    fixed = motion.FlowScaling()
    img = fixed.encode(uv)
    assert img.dtype == np.uint8 and img.shape == (10, 12, 3)
    back_uv, back_s = fixed.decode(img)
    assert np.abs(back_uv - uv).max() <= 0.5 / fixed.gain + 1e-6
    assert np.abs(back_s - np.clip(motion.strain(uv), 0, 255 / fixed.strain_gain)).max() <= 0.5 / fixed.strain_gain
    assert fixed.encode(np.zeros((4, 4, 2)))[..., :2].tolist() == np.full((4, 4, 2), 128).tolist()
    assert fixed.encode(np.full((4, 4, 2), 100.0))[..., 0].max() == 255  # clipped
    assert fixed.zero().tolist() == [128, 128, 0]
    # min-max: the zero of u and v is found where the face does not move
    uv = np.zeros((40, 40, 2), np.float32)
    uv[25:35, 5:15] = (2.0, -3.0)  # a moving patch below the centre
    uv[2, 2] = (-1.0, 0.5)
    mm = motion.FlowScaling("minmax")
    img = mm.encode(uv)
    assert img[..., :3].min() == 0 and img[..., :3].max() == 255
    expect = [255 * (0 - (-1.0)) / 3.0, 255 * (0 - (-3.0)) / 3.5, 0]
    np.testing.assert_allclose(mm.zero(img), expect, atol=1)
    np.testing.assert_allclose(mm.zero(np.stack([img, img]))[1], expect, atol=1)  # one zero per image of a clip
    # the views of stored min-max images reflect u about each image's measured zero
    ch = FlowChannels(u=0, axis=-1, zero=mm.zero(np.stack([img, img]))[:, 0].reshape(2, 1, 1, 1))
    left = make_view(np.stack([img, img]), "L", flow=ch)[1]
    mirrored_u = np.clip(np.rint(2 * mm.zero(img)[0] - img[:, 19::-1, 0]), 0, 255)
    np.testing.assert_array_equal(left[:, 20:, 0], mirrored_u)
    with pytest.raises(InputError, match="cannot be decoded"):
        mm.decode(img)
    with pytest.raises(InputError, match="unknown flow scaling"):
        motion.FlowScaling("log")


def test_flow_image_and_clip(face_image):
    a, b = crop(face_image, 112), crop(face_image, 112, SHIFT)
    img = motion.flow_image(a, b, 28, "tvl1")
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    uv, _ = motion.FIXED.decode(img)
    rows, cols = motion.central((28, 28), 0.8)
    np.testing.assert_allclose(uv[rows, cols].mean(axis=(0, 1)), [0.4 / 4, -0.3 / 4], atol=0.03)  # 112 → 28 px
    clip = np.stack([crop(face_image, 32, np.array([[1, 0, 0.5 * t], [0, 1, 0]])) for t in range(4)])
    fc = motion.flow_clip(clip, "farneback")
    assert fc.shape == (3, 32, 32, 3) and fc.dtype == np.uint8
    consecutive = motion.FIXED.decode(fc)[0][:, 8:24, 8:24, 0].mean(axis=(1, 2))
    onset = motion.FIXED.decode(motion.flow_clip(clip, "farneback", reference="onset"))[0][:, 8:24, 8:24, 0]
    np.testing.assert_allclose(consecutive, 0.5, atol=0.1)
    np.testing.assert_allclose(onset.mean(axis=(1, 2)), [0.5, 1.0, 1.5], atol=0.15)
    with pytest.raises(InputError, match="at least 2 frames"):
        motion.flow_clip(clip[:1])
    with pytest.raises(InputError, match="different sizes"):
        motion.flow_clip([clip[0], clip[1, :30]])


def test_tim_linear_sequence_and_ends(face_image):
    a, b = crop(face_image, 24).astype(np.float64), crop(face_image, 24, SHIFT).astype(np.float64)

    def ramp(n):
        return np.stack([a + (b - a) * t for t in np.linspace(0, 1, n)])

    for n_in, n_out, tol in [(30, 10, 0.01), (10, 19, 0.01), (12, 5, 0.01)]:
        out = motion.tim(ramp(n_in), n_out)
        assert out.shape == (n_out, 24, 24, 3)
        np.testing.assert_allclose(out[[0, -1]], ramp(n_in)[[0, -1]], atol=1e-9)  # the end frames, exactly
        # a linear sequence is reproduced, up to the cosine series' ripple (relative to the ramp's range)
        err = np.abs(out - ramp(n_out)).max() / np.abs(b - a).max()
        assert err < tol, (n_in, n_out, err)
    clip = ramp(30).round().astype(np.uint8)
    out = motion.tim(clip, 10)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[[0, -1]], clip[[0, -1]])
    assert np.abs(out.astype(int) - ramp(10)).max() <= 1  # rounding only
    assert motion.tim(clip, 30) is clip
    with pytest.raises(InputError, match="at least 2 frames"):
        motion.tim(clip, 1)
    with pytest.raises(InputError, match="different sizes"):
        motion.tim([clip[0], clip[1, :20]], 5)


def test_magnify_in_band_and_out(face_image):
    fps, n, size = 30.0, 60, 64
    smooth = cv2.GaussianBlur(face_image, (0, 0), 4 / (0.7 * size / 112))  # σ = 4 crop px: smooth for linear EVM
    t = np.arange(n)
    rows, cols = motion.central((size, size), 0.6)

    def amplitude(clip, f_hz):
        u = np.array([motion.flow(clip[0], f, "farneback")[rows, cols, 0].mean() for f in clip])
        return 2 / n * np.sum(u * np.sin(2 * np.pi * f_hz * t / fps))

    alpha = 3.0
    for f_hz, gain in [(3.0, 1 + alpha), (10.0, 1.0)]:  # 2–5 Hz band: 3 Hz inside, 10 Hz outside
        d = 0.5 * np.sin(2 * np.pi * f_hz * t / fps)
        clip = np.stack([crop(smooth, size, np.array([[1, 0, x], [0, 1, 0]])) for x in d])
        out = motion.magnify(clip, fps, alpha, 2.0, 5.0, levels=3, cutoff=4.0)
        assert out.shape == clip.shape and out.dtype == np.uint8
        ratio = amplitude(out, f_hz) / amplitude(clip, f_hz)
        assert abs(ratio - gain) <= 0.15 * gain, (f_hz, ratio)
    np.testing.assert_array_equal(motion.magnify(clip[..., 0], fps, 0.0, 2.0, 5.0, levels=3), clip[..., 0])  # α = 0
    grey = motion.magnify(clip[..., 1], fps, alpha, 2.0, 5.0, levels=3)  # a grey clip: as one channel of RGB
    assert np.abs(grey.astype(int) - motion.magnify(clip, fps, alpha, 2.0, 5.0, levels=3)[..., 1]).max() <= 1
    assert motion.band_alphas(3.0, 3, 16.0) == [0.0, 1.0, 3.0, 3.0]
    with pytest.raises(InputError, match="pyramid levels"):
        motion.magnify(clip, fps, alpha, 2.0, 5.0, levels=6)
    with pytest.raises(InputError, match="pass band"):
        motion.magnify(clip, fps, alpha, 5.0, 2.0)
    with pytest.raises(InputError, match="Nyquist"):
        motion.magnify(clip, fps, alpha, 16.0, 20.0)


def test_mirrored_clip_flow_is_mirrored_flow_with_u_negated(face_image):
    """Equivariance, through the views: flow(view of the clip) = view of flow(clip), u negated where mirrored."""
    size = 64
    then = cv2.getRotationMatrix2D((28.0, 36.0), 1.0, 1.0)  # off-centre: u differs on the two halves
    then[:, 2] += (0.6, 0.3)
    a, b = crop(face_image, size), crop(face_image, size, then)
    uv = motion.flow(a, b)
    channels = FlowChannels(u=0, axis=-1, zero=0.0)
    ok = np.ones((size, size), bool)
    ok[:, size // 2 - 6: size // 2 + 6] = False  # the seam of L and R: a motion edge the flow smooths over
    rows, cols = motion.central((size, size), 0.8)
    region = np.zeros_like(ok)
    region[rows, cols] = True
    for view, va, vb, want in zip("OLR", make_views(a), make_views(b), make_views(uv, "OLR", flow=channels)):
        got = motion.flow(va, vb)
        err = np.linalg.norm(got - want, axis=-1)[ok & region].mean()
        assert err < 0.05, (view, err)
    got = motion.flow(mirror(a), mirror(b))
    assert np.linalg.norm(got - mirror(uv, flow=channels), axis=-1)[region].mean() < 0.05
    # the stored images: "fixed" images' views are the views' images (u reflected about 128)
    # (the strain channel is mirrored as an image: at the seam it is not the strain of the view's flow)
    img = motion.FIXED.encode(uv)
    s = motion.strain(uv)
    for view in "OLR":
        got = make_view(img, view, flow=FlowChannels(zero=128))
        want = motion.FIXED.encode(make_view(uv, view, flow=channels), make_view(s, view, axis=-1))
        assert np.abs(got.astype(int) - want).max() <= 1, view
