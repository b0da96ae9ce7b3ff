"""Motion inputs on the training side: flow augmentation (flips and rotations turn the vectors), input kinds refused
across models and caches, and published flow-image sets (generated from synthetic clips) read, checked and trained
with LOSO."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inference import motion
from inference.errors import InputError
from training.cache import Cache
from training.config import load_config
from training.data import ClipBank, augment
from training.datasets import flowset
from training.synth.flowset import write_flowset

ROOT = Path(__file__).resolve().parent.parent
STSTNET = ROOT / "training" / "configs" / "peers" / "ststnet.yaml"


def test_augmented_flow_is_the_flow_of_the_augmented_frames(face_image):
    """A mirror negates u, a rotation turns (u, v): the flow image augmented by ``augment`` equals (TV-L1) the flow of
    the two frames augmented with the same random draws, within 0.05 px mean end-point error over the middle."""
    face = cv2.resize(face_image[40:300, 110:340], (96, 96), interpolation=cv2.INTER_AREA)
    moved = cv2.warpAffine(face, np.float32([[1, 0, 0.8], [0, 1, -0.5]]), (96, 96), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    scaling = motion.FlowScaling()  # fixed: value = 128 + 16 u
    image = motion.flow_image(face, moved, None, "tvl1", scaling)
    frames = torch.from_numpy(np.stack([face, moved]))[None]
    zero = torch.tensor(scaling.zero(), dtype=torch.float32).view(1, 1, 3)
    mirrored = 0
    for seed in range(4):
        a = augment(frames, 96, torch.Generator().manual_seed(seed), rotation=30.0, flip=True)
        f = augment(torch.from_numpy(image)[None, None], 96, torch.Generator().manual_seed(seed), rotation=30.0,
                    flip=True, flow_zero=zero)
        pair = (a[0].permute(1, 2, 3, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        truth = motion.flow(pair[0], pair[1], "tvl1")[24:72, 24:72]
        got = ((f[0, :2, 0].permute(1, 2, 0).numpy() * 255 - 128) / 16)[24:72, 24:72]
        assert np.linalg.norm(truth - got, axis=-1).mean() < 0.05
        mirrored += truth[..., 0].mean() < 0  # the shift is +0.8 px in x: a mirror makes it negative
    assert 0 < mirrored < 4  # the seeds drew both mirrored and unmirrored clips


def test_a_flip_negates_u_about_its_zero():
    """Known flow: u a horizontal ramp, v constant, zero motion at 128 (fixed) or elsewhere (a min-max image's
    measured zero). A mirrored clip is the picture mirrored with u reflected about the zero; v and strain only move."""
    s = 16
    x = np.arange(s, dtype=np.float32)
    img = np.empty((s, s, 3), np.uint8)
    img[..., 0] = (100 + 4 * x)[None, :]
    img[..., 1] = 140
    img[..., 2] = (3 * x)[:, None]
    clips = torch.from_numpy(img)[None, None].repeat(8, 1, 1, 1, 1)
    for z in (128.0, 120.0):
        zero = torch.tensor([z, 128.0, 0.0]).view(1, 1, 3).repeat(8, 1, 1)
        out = augment(clips, s, torch.Generator().manual_seed(3), flip=True, flow_zero=zero)[:, :, 0] * 255
        plain = torch.from_numpy(img).permute(2, 0, 1).float()
        flipped = plain.flip(-1)
        flipped[0] = 2 * z - flipped[0]
        kinds = [0 if torch.allclose(o, plain, atol=1e-3) else 1 if torch.allclose(o, flipped, atol=1e-3) else -1
                 for o in out]
        assert -1 not in kinds and 0 < sum(kinds) < 8, kinds
        # the same draws without flow_zero (RGB): a mirror only moves the pixels
        rgb = augment(clips, s, torch.Generator().manual_seed(3), flip=True)[:, :, 0] * 255
        for r, k in zip(rgb, kinds):
            torch.testing.assert_close(r, plain.flip(-1) if k else plain, atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def flow_set(tmp_path_factory):
    """A synthetic composite flow-image set: 2 subjects per source dataset, 3 clips each (one per class); Farneback
    flow on 32-pixel face crops, to keep it quick."""
    root = tmp_path_factory.mktemp("flowset") / "set"
    clips = write_flowset(root, subjects=2, clips_per_subject=3, seed=4, frame_size=(120, 160), n_frames=(6, 8),
                          crop=32, method="farneback")
    return root, clips


def test_a_generated_set_loads_with_its_subjects_kept_apart_and_its_labels(flow_set, tmp_path):
    root, clips = flow_set
    names = sorted(p.name for p in (root / flowset.IMAGE_DIR).iterdir())
    assert names == sorted(f"{c['sub']}_{c['clip']} .png" for c in clips) and len(names) == 18
    cache = Cache.open(root)  # read as it is: no other step
    assert cache.inputs["kind"] == "flow_image" and cache.inputs["scaling"]["mode"] == "minmax"
    assert cache.frames.shape == (18, 28, 28, 3)
    for c, row, i in zip(clips, cache.rows, range(18)):
        np.testing.assert_array_equal(cache.clip(i)[0], c["image"])
    bank = ClipBank.from_caches([str(root)], "composite", 1, inputs="flow_image")
    assert sorted(set(bank.subjects.tolist())) == [1001, 1002, 2001, 2002, 3006, 3007]
    truth = {f"{c['dataset']}:{c['sub']}/{c['clip']}": c["label"] for c in clips}
    assert {i: bank.classes[int(y)] for i, y in zip(bank.ids, bank.labels)} == truth
    np.testing.assert_allclose(bank.zeros[:, 0].numpy(), motion.FlowScaling("minmax").zero(cache.frames), atol=1e-6)
    # the same set copied into an ordinary cache by prepare --dataset flowset: the same clips
    from training.prepare import prepare

    summary = prepare("flowset", root, tmp_path / "cache", progress=False)
    copied = Cache.open(tmp_path / "cache")
    assert summary["prepared"] == 18 and copied.inputs == cache.inputs
    np.testing.assert_array_equal(np.asarray(copied.frames), cache.frames)
    assert [(r["dataset"], r["subject"], r["clip"], r["label"]) for r in copied.rows] == \
        [(r["dataset"], r["subject"], r["clip"], r["label"]) for r in cache.rows]


def test_a_generated_set_trains_with_loso_on_flow_views(flow_set, tmp_path):
    """STSTNet's config on the set as published, SBML on O/L/R flow views: one fold per subject, every clip predicted
    once, and the fold models record their input kind."""
    from training.loso import run
    from training.schemes import load_view_model

    root, _ = flow_set
    cfg = load_config(STSTNET, [f"data.caches=[{root}]", f"out={tmp_path / 'run'}", "epochs=2", "batch_size=8",
                                "train_views=OLR", "device=cpu"])
    results = run(cfg, log=lambda *_: None, progress=False)
    assert results["n"] == 18 and results["protocol"]["dataset_protocol"] == "composite"
    assert results["protocol"]["subjects"] == 6
    folds = sorted(p.name for p in (tmp_path / "run" / "folds").iterdir())
    assert folds == [f"subject_{s}" for s in (1001, 1002, 2001, 2002, 3006, 3007)]
    model, meta = load_view_model(tmp_path / "run" / "folds" / "subject_2001" / "model.pt")
    assert model.inputs == "flow_image" and meta["extra"]["inputs"]["scaling"]["mode"] == "minmax"
    assert meta["extra"]["normalisation"]["centre"] == "zero"


def test_the_authors_recipe_can_be_named_raw_pixels_and_class_ordered_batches(flow_set):
    """STSTNet's authors' port fed ``cv2.imread`` values as float 0–255 and read its class folders unshuffled:
    ``model.normalisation=raw`` and ``train.order=by_class`` train that way (what the issue's comparison ran); the
    defaults stay the project's (flow centred on its zero, a fresh order each epoch). A wrong name is refused."""
    from training.engine import Trainer

    root, _ = flow_set
    base = [f"data.caches=[{root}]", "device=cpu"]
    default = Trainer(load_config(STSTNET, base), log=lambda *_: None, progress=False)
    assert default.norm["centre"] == "zero" and default.preprocessing.centre
    gen = torch.Generator().manual_seed(0)
    labels = default.bank.labels
    assert not torch.equal(default.epoch_order(labels, gen), default.epoch_order(labels, gen))
    authors = Trainer(load_config(STSTNET, [*base, "model.normalisation=raw", "train.order=by_class"]),
                      log=lambda *_: None, progress=False)
    assert authors.norm["pixel_scale"] == 255.0 and authors.norm["mean"] == [0.0] * 3
    assert not authors.preprocessing.centre
    x = authors.batch(torch.arange(4), authors.bank.clips, None, train=False)
    stored = authors.bank.clips[:4].float().permute(0, 4, 1, 2, 3)  # (N, 3, T, H, W), the uint8 values as they are
    torch.testing.assert_close(x, stored)
    order = authors.epoch_order(labels, gen)
    assert torch.equal(order, authors.epoch_order(labels, gen))  # the same every epoch
    assert torch.equal(labels[order], torch.sort(labels).values)  # grouped by class, negative first
    for bad, key in (("model.normalisation=imagenet", "model.normalisation"), ("train.order=random", "train.order")):
        with pytest.raises(InputError, match=key):
            load_config(STSTNET, [*base, bad])


def test_a_model_of_one_kind_refuses_a_cache_of_another(smic_cache, flow_set, tmp_path):
    from training.engine import Trainer
    from training.schemes import ViewModel, save_view_model

    with pytest.raises(InputError, match="holds rgb inputs, but this model trains on flow_image"):
        Trainer(load_config(STSTNET, [f"data.caches=[{smic_cache}]", "data.protocol=smic", "device=cpu"]))
    root, _ = flow_set
    with pytest.raises(InputError, match="holds flow_image inputs, but this model trains on rgb"):
        ClipBank.from_caches([str(root)], "composite", 8)
    # our own flow model as the starting weights of an RGB run
    flow_model = ViewModel({"name": "ststnet"}, 3, "sbml", "O", inputs="flow_image")
    save_view_model(tmp_path / "flow.pt", flow_model, ["negative", "positive", "surprise"],
                    {"inputs": {"kind": "flow_image"}, "normalisation": {"mean": [0.5] * 3, "std": [0.5] * 3}})
    cfg = load_config(ROOT / "training" / "configs" / "tiny.yaml",
                      [f"data.caches=[{smic_cache}]", f"model.pretrained={tmp_path / 'flow.pt'}"])
    with pytest.raises(InputError, match="was trained on flow_image inputs; this run trains on rgb"):
        Trainer(cfg)


def _broken(root: Path, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(root, out)
    return out


def test_a_set_whose_csv_and_images_disagree_is_refused_with_the_row_or_file(flow_set, tmp_path):
    root, clips = flow_set
    first = f"{clips[0]['sub']}_{clips[0]['clip']} .png"
    sheet = "combined_3_class2_for_optical_flow.csv"

    missing = _broken(root, tmp_path, "missing")
    (missing / flowset.IMAGE_DIR / first).unlink()
    with pytest.raises(InputError, match=rf"{sheet} line 2 \(smic, s01, s01_ne_01\): no image 's01_s01_ne_01 .png'"):
        Cache.open(missing)

    extra = _broken(root, tmp_path, "extra")
    shutil.copy(extra / flowset.IMAGE_DIR / first, extra / flowset.IMAGE_DIR / "s09_s09_po_01 .png")
    with pytest.raises(InputError, match=r"s09_s09_po_01 \.png: no row in .* names this image"):
        Cache.open(extra)

    label = _broken(root, tmp_path, "label")
    lines = (label / sheet).read_text().splitlines()
    lines[3] = lines[3].replace(",2,", ",7,")
    (label / sheet).write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{sheet} line 4 .*label '7' is not one of 0, 1, 2"):
        Cache.open(label)

    unreadable = _broken(root, tmp_path, "unreadable")
    (unreadable / flowset.IMAGE_DIR / first).write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"s01_s01_ne_01 \.png: cannot be read as an image"):
        Cache.open(unreadable)

    with pytest.raises(InputError, match="not a dataset cache .* nor a flow-image set"):
        Cache.open(tmp_path)


def test_flow_clips_and_magnified_clips_from_aligned_faces(smic_cache, tmp_path):
    """The other kinds prepare makes: a flow clip (T-1 frames of u, v, strain) and a magnified clip, exactly what
    inference.motion computes from the cached faces; a flow_clip cache makes a bank whose per-frame zeros drive the
    flip of every frame."""
    from training.cache import CacheWriter
    from training.datasets.base import ClipRecord
    from training.prepare import MotionOptions, motion_input

    rgb = Cache.open(smic_cache)
    faces = np.asarray(rgb.clip(0))
    rec = ClipRecord("smic", 1, "s1_ne_01", "negative", fps=100.0)
    flow_opts = MotionOptions("flow_clip", method="farneback")
    clip, how = motion_input(faces, rec, flow_opts)
    np.testing.assert_array_equal(clip, motion.flow_clip(faces, "farneback"))
    assert clip.shape == (len(faces) - 1, 56, 56, 3) and how == ""
    magnified, _ = motion_input(faces, rec, MotionOptions("magnified", alpha=5.0, levels=2))
    np.testing.assert_array_equal(magnified, motion.magnify(faces, 100.0, 5.0, 0.5, 5.0, 2))
    with pytest.raises(InputError, match="frame rate"):
        motion_input(faces, ClipRecord("smic", 1, "x", "negative"), MotionOptions("magnified"))
    # a small flow_clip cache of three clips, and the bank over it
    writer = CacheWriter(tmp_path / "flowclip", {**rgb.settings, "inputs": flow_opts.settings(56, "estimated")})
    writer.open()
    for i in range(3):
        writer.add(rgb.rows[i], motion_input(np.asarray(rgb.clip(i)), rec, flow_opts)[0])
    bank = ClipBank.from_caches([str(tmp_path / "flowclip")], "smic", 4, inputs="flow_clip")
    assert bank.clips.shape == (3, 4, 56, 56, 3) and bank.zeros.shape == (3, 4, 3)
    assert torch.equal(bank.zeros, torch.tensor([128.0, 128.0, 0.0]).expand(3, 4, 3))
    out = augment(bank.clips, 56, torch.Generator().manual_seed(0), flip=True, flow_zero=bank.zeros) * 255
    plain = bank.clips.permute(0, 4, 1, 2, 3).float()
    flips = []
    for o, p in zip(out, plain):
        mirrored = p.flip(-1)
        mirrored[0] = 256 - mirrored[0]  # u reflected about 128 on every frame
        flips.append(torch.allclose(o, mirrored, atol=1e-3))
        assert flips[-1] or torch.allclose(o, p, atol=1e-3)
    assert any(flips)


def test_ststnet_is_three_shallow_streams_in_one_convolution():
    """STSTNet as published (christy1206/STSTNet): streams of 3, 5 and 8 filters (3×3, padding 2) → ReLU → batch
    norm → max-pool 3/3 padding 1, concatenated, average-pooled 2/2, 400 features, 1,683 parameters for 3 classes.
    The one 16-filter convolution computes exactly the three streams."""
    import torch.nn.functional as F

    from training.models import create_model

    torch.manual_seed(0)
    model = create_model("ststnet", 3).eval()
    assert sum(p.numel() for p in model.parameters()) == 1683 and model.feature_dim == 400
    conv, _, bn = model.streams[0], model.streams[1], model.streams[2]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        x = torch.randn(4, 3, 1, 28, 28)
        streams, start = [], 0
        for width in (3, 5, 8):
            c = slice(start, start + width)
            y = F.relu(F.conv2d(x[:, :, 0], conv.weight[c], conv.bias[c], padding=2))
            y = F.batch_norm(y, bn.running_mean[c], bn.running_var[c], bn.weight[c], bn.bias[c], eps=bn.eps)
            streams.append(F.max_pool2d(y, 3, 3, 1))
            start += width
        reference = model.fc(F.avg_pool2d(torch.cat(streams, 1), 2, 2).flatten(1))
        torch.testing.assert_close(model(x), reference)
    with pytest.raises(InputError, match="one flow image per clip"):
        model(torch.randn(1, 3, 2, 28, 28))
    with pytest.raises(InputError, match="set train.size=28"):
        model(torch.randn(1, 3, 1, 32, 32))
