"""Flow-image recipes (inference/recipe.py): the face window placed from the aligned face's landmarks, the flow
computed on a larger region and cut, squashed to the recipe's size with the vectors scaled, the channel order, the
named composite recipe, and the recipe carried by a package's input."""

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.errors import InputError
from inference.inputs import build_input, kind, recipe_inputs
from inference.motion import FlowScaling
from inference.package import ModelPackage
from inference.recipe import FLOW_RECIPES, FlowRecipe, recipe

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "demo" / "default_model"


def _texture(n=160, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.integers(0, 255, (n, n)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(x, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _shifted(dx=1, dy=1, s=112):
    big = _texture()
    return big[20:20 + s, 20:20 + s], big[20 - dy:20 - dy + s, 20 - dx:20 - dx + s]  # content moves +dx, +dy


def test_composite_recipe_places_the_face_as_the_published_images():
    r = recipe("megc2019-composite")
    assert FLOW_RECIPES["megc2019-composite"] is r
    s = 112
    lm = r.landmarks(s)
    x0, y0, x1, y1 = r.window(s)
    to_out = lambda p: ((p[0] + 0.5 - x0) / (x1 - x0) * r.size, (p[1] + 0.5 - y0) / (y1 - y0) * r.size)  # noqa: E731
    (lx, ly), (rx, ry) = to_out(lm[0]), to_out(lm[1])
    mouth_y = to_out((lm[3] + lm[4]) / 2)[1]
    assert 5 <= ly <= 7 and ly == pytest.approx(ry)  # eyes on rows 5–7
    assert 14 <= rx - lx <= 16  # 14–16 px apart
    assert (lx + rx) / 2 == pytest.approx(r.size / 2)  # the midline in the middle
    assert 18 <= mouth_y <= 21
    assert (y1 - y0) > (x1 - x0)  # taller than wide: squashed square
    assert r.channels == ("strain", "v", "u") and r.flow_scaling.mode == "minmax"
    # the flow region (window + context) lies inside the crop at the recipe's margin
    gx, gy = r.context * (x1 - x0), r.context * (y1 - y0)
    assert x0 - gx >= 0 and y0 - gy >= 0 and x1 + gx <= s and y1 + gy <= s


def test_window_follows_the_landmarks():
    r = recipe("megc2019-composite")
    lm = r.landmarks(112)
    moved = lm + [3.0, -2.0]
    a, b = np.array(r.window(112, lm)), np.array(r.window(112, moved))
    assert np.allclose(b - a, [3, -2, 3, -2])
    wide = lm.copy()
    wide[1, 0] += 10  # a wider inter-ocular distance widens the window, not its height
    w = r.window(112, wide)
    assert (w[2] - w[0]) == pytest.approx((a[2] - a[0]) * (lm[1, 0] + 10 - lm[0, 0]) / (lm[1, 0] - lm[0, 0]))
    assert (w[3] - w[1]) == pytest.approx(a[3] - a[1])
    with pytest.raises(InputError, match="degenerate"):
        r.window(112, np.zeros((5, 2)))


def test_flow_is_squashed_and_scaled_and_context_keeps_the_border_out():
    a, b = _shifted(1, 1)
    r = replace(recipe("megc2019-composite"), scaling=FlowScaling("fixed").to_dict(), channels=("u", "v", "strain"))
    x0, y0, x1, y1 = r.window(112)
    true_u, true_v = r.size / (x1 - x0), r.size / (y1 - y0)  # one crop pixel, in squashed output pixels
    errors = {}
    for context in (0.0, 0.25):
        img = replace(r, context=context).image(a, b).astype(np.float32)
        assert img.shape == (28, 28, 3)
        u, v = (img[..., 0] - 128) / 16, (img[..., 1] - 128) / 16
        assert np.median(u) == pytest.approx(true_u, abs=1 / 16)
        assert np.median(v) == pytest.approx(true_v, abs=1 / 16)
        ring = np.ones((28, 28), bool)
        ring[2:-2, 2:-2] = False
        errors[context] = np.abs(u - true_u)[ring].mean() + np.abs(v - true_v)[ring].mean()
    assert errors[0.25] < errors[0.0]  # flow on a larger region, then cut: the window's border is interior


def test_channel_order_and_minmax():
    a, b = _shifted(1, 0)
    base = replace(recipe("megc2019-composite"), channels=("u", "v", "strain"))
    uvs = base.image(a, b)
    composite = recipe("megc2019-composite").image(a, b)
    assert np.array_equal(composite, uvs[..., [2, 1, 0]])  # strain, v, u: the published files as cv2.imread reads
    for c in range(3):
        if uvs[..., c].max() > uvs[..., c].min():
            assert uvs[..., c].min() == 0 and uvs[..., c].max() == 255  # min-max per image and per channel


def test_recipe_rides_in_the_package_input_and_builds_the_served_image(tmp_path):
    a, b = _shifted(1, 1)
    motion = recipe_inputs("megc2019-composite")
    assert motion["kind"] == "flow_image_bgr"  # the row whose channels are the recipe's (strain, v, u)
    kind("flow_image_bgr").check(motion)
    x, apex = build_input(np.stack([a, a, b]), motion, None, 2)
    assert apex == 2 and x.shape == (1, 28, 28, 3)
    assert np.array_equal(x[0], recipe("megc2019-composite").image(a, b))
    assert FlowRecipe.from_dict(json.loads(json.dumps(motion["recipe"]))) == recipe("megc2019-composite")
    # fed to a u, v, strain row, the recipe's image is reordered once, from its order to the row's
    uvs, _ = build_input(np.stack([a, a, b]), recipe_inputs("megc2019-composite", "flow_image"), None, 2)
    assert np.array_equal(uvs[0], x[0][..., ::-1]) and not np.array_equal(uvs[0], x[0])
    with pytest.raises(InputError, match="cannot carry one"):
        recipe_inputs("megc2019-composite", "flow_clip")

    data = json.loads((DEFAULT / "config.json").read_text())
    data["input"] = {**data["input"], "kind": "flow_image_bgr", "color": "strain,v,u", "height": 28, "width": 28,
                     "motion": motion}
    data["face_crop"] = {**data["face_crop"], "margin": 0.25}
    pkg = ModelPackage.from_json(data)
    assert pkg.motion["recipe"]["name"] == "megc2019-composite"
    assert ModelPackage.from_json(json.loads(json.dumps(pkg.to_json()))).motion == pkg.motion
    data["face_crop"]["margin"] = 0.1
    with pytest.raises(InputError, match="margin 0.25"):
        ModelPackage.from_json(data)


def test_bad_recipes_are_refused():
    with pytest.raises(InputError, match="unknown flow recipe"):
        recipe("nope")
    with pytest.raises(InputError, match="channels"):
        FlowRecipe(channels=("u", "u", "v"))
    with pytest.raises(InputError, match="unknown field"):
        FlowRecipe.from_dict({"widht": 2})
    with pytest.raises(InputError, match="unknown tvl1 parameter"):
        FlowRecipe(params={"nope": 1})
    with pytest.raises(InputError, match="cannot carry"):
        kind("flow_clip").check({**recipe_inputs("megc2019-composite"), "kind": "flow_clip"})


def test_a_published_flow_set_model_is_served_with_the_composite_recipe(tmp_path):
    """``export --flow-recipe megc2019-composite``: a model trained on a published flow-image set is packaged with
    the recipe (its channels in the model's input order, its size the model's, the crop at the recipe's margin), the
    card names it, and serving a real clip makes exactly the recipe's image from the aligned onset and apex."""
    import torch

    from export.__main__ import export_package
    from inference.inputs import FLOW_NORMALISATION
    from inference.runtime import Predictor
    from tests.test_motion_package import CLIP, LABELS
    from training.cache import Cache
    from training.schemes import ViewModel, save_view_model
    from training.synth.flowset import write_flowset

    root = tmp_path / "set"
    write_flowset(root, subjects=1, clips_per_subject=3, seed=5, frame_size=(120, 160), n_frames=(6, 8), crop=32,
                  method="farneback")
    trained = Cache.open(root).inputs
    torch.manual_seed(0)
    vm = ViewModel({"name": "ststnet"}, 3, "sbml", "OLR", inputs="flow_image").eval()
    save_view_model(tmp_path / "m.pt", vm, LABELS,
                    {"inputs": trained, "normalisation": dict(FLOW_NORMALISATION), "n_frames": 1, "size": 28,
                     "crop": None, "caches": [str(root)], "protocol": "composite"})
    with pytest.raises(InputError, match="not both"):
        export_package(tmp_path / "m.pt", tmp_path / "x", serve_flow="tvl1", flow_recipe="megc2019-composite",
                       log=lambda *_: None)
    cfg = export_package(tmp_path / "m.pt", tmp_path / "pkg", flow_recipe="megc2019-composite", face_crop=96,
                         log=lambda *_: None)
    r = FlowRecipe.from_dict(cfg.motion["recipe"])
    assert r == replace(recipe("megc2019-composite"), channels=("u", "v", "strain"))
    assert cfg.motion["trained_on"] == trained and cfg.face_crop["size"] == 96 and cfg.face_crop["margin"] == 0.25
    assert "flow-image recipe **megc2019-composite**" in (tmp_path / "pkg" / "README.md").read_text()
    pred = Predictor(tmp_path / "pkg", device="cpu", engine="onnxruntime").predict(CLIP)
    assert pred.aligned.shape[1:] == (96, 96, 3)
    np.testing.assert_array_equal(pred.motion[0], r.image(pred.aligned[0], pred.aligned[pred.apex]))
