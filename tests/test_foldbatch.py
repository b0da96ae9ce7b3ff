"""Every fold trained at once (training.foldbatch): the same fold models as the sequential runner, a held-out subject
that changes nothing in its fold, resume, and the sequential run folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.motion import strain
from training.config import load_config
from training.datasets.flowset import write_set
from training.engine import Trainer, seed_for
from training.foldbatch import train_folds, unsupported

ROOT = Path(__file__).resolve().parents[1]
STSTNET = ROOT / "training" / "configs" / "peers" / "ststnet.yaml"
SUBJECTS = (("smic", "s1"), ("smic", "s2"), ("casme2", "sub01"), ("samm", "006"))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """4 subjects × 5 flow images of 28 px, the class in the mean of u (so the folds learn something)."""
    rng = np.random.default_rng(0)
    clips = []
    for dataset, sub in SUBJECTS:
        for j in range(5):
            label = ("negative", "positive", "surprise")[(j + len(sub)) % 3]
            image = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
            image[..., 0] = np.clip(image[..., 0] // 2 + 60 * ("negative", "positive", "surprise").index(label), 0, 255)
            s = strain(image[..., :2].astype(np.float32))  # strain of u, v: the reader checks it
            image[..., 2] = np.round((s - s.min()) / (s.max() - s.min()) * 255).astype(np.uint8)
            clips.append({"dataset": dataset, "sub": sub, "clip": f"{sub}_c{j}", "label": label, "image": image})
    root = tmp_path_factory.mktemp("foldbatch") / "set"
    write_set(root, clips)
    return root


def _config(root: Path, out: Path, *extra: str) -> dict:
    # lr large enough that 3 epochs move every weight; one batch per epoch (batch ≥ clips), so the order of the
    # clips in it does not matter; no dropout (its masks are random numbers the two paths draw differently)
    return load_config(STSTNET, [f"data.caches=[{root}]", f"out={out}", "epochs=3", "batch_size=64", "lr=0.01",
                                 "train_views=OL", "test_views=OLR", "model.kwargs={image_size: 28, dropout: 0.0}",
                                 "device=cpu", *extra])


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}


# FSB sums three views' shares into one logit: at lr 0.01 its loss climbs (2 → 24 in 3 epochs) and Adam's steps on
# gradients that are rounding noise part the two forms; at 0.001 it trains and every weight still moves
FSB = ["scheme.type=fsb", "train_views=OLR", "test_views=OLR", "lr=0.001"]


@pytest.mark.parametrize("step", ["compiled", "autograd", "compiled, class weights", "compiled, FSB", "autograd, FSB"])
def test_the_folds_trained_at_once_are_the_sequential_folds(tiny_set, tmp_path, monkeypatch, step):
    """Per fold: the same weights (and batch-norm statistics) as Trainer.train_model, so the same predictions;
    perturbing the held-out subject's clips leaves its own fold unchanged (it is in every other fold's data). Both
    forms of the step: compiled (training/foldkernel.c) and PyTorch's autograd; with the loss weighted per class
    (train.class_weights=balanced: each fold counts its own training clips, 8/5/7 in the set less its held-out five);
    and FSB-OLR (one fused linear head over the three views' features, the views' images in one batch norm)."""
    if step.startswith("autograd"):
        monkeypatch.setenv("MER_FOLDBATCH_KERNEL", "0")
    lines = []
    extra = ["class_weights=balanced"] if "class weights" in step else FSB if "FSB" in step else []
    trainer = Trainer(_config(tiny_set, tmp_path / "a", *extra), tmp_path / "a", log=lines.append, progress=False)
    assert unsupported(trainer) is None
    subjects = sorted(set(trainer.bank.subjects.tolist()))
    batched = train_folds(trainer, subjects, tmp_path / "a" / "foldbatch")
    said = [x for x in lines if x.startswith("fold-batched: each step")]
    assert len(said) == 1 and ("compiled (training/foldkernel.c" in said[0]) == step.startswith("compiled"), said
    for s in subjects:
        bank = trainer.bank
        train_idx, test_idx = np.flatnonzero(bank.subjects != s), np.flatnonzero(bank.subjects == s)
        seq = trainer.train_model(f"subject_{s}", tmp_path / "seq" / str(s), train_idx, test_idx,
                                  seed_for(trainer.cfg["train"]["seed"], "fold", int(s)))
        if "class weights" in step:  # the sequential fold's loss weights: n / (3 n_c) of its 15 training clips, not 1
            counts = np.bincount(bank.labels.numpy()[train_idx], minlength=3)
            want = torch.tensor(15 / (3 * counts), dtype=torch.float32)
            torch.testing.assert_close(seq["model"].class_weight, want)
            assert float((want - 1).abs().max()) > 0.1
        start = trainer.new_model(seed_for(trainer.cfg["train"]["seed"], "fold", int(s)))
        ours, theirs = _state(batched[s]["model"]), _state(seq["model"])
        if "FSB" in step:  # the fused head: (3, 3 × 400), the backbone's own classifier unused by both
            assert batched[s]["model"].head.weight.shape == (3, 1200)
            ours.update({f"head.{k}": v for k, v in batched[s]["model"].head.state_dict().items()})
            theirs.update({f"head.{k}": v for k, v in seq["model"].head.state_dict().items()})
            start_head = trainer.new_model(seed_for(trainer.cfg["train"]["seed"], "fold", int(s))).head
            assert float((theirs["head.weight"] - start_head.weight.detach()).abs().max()) > 1e-3
        moved = max(float((theirs[k] - v).abs().max()) for k, v in _state(start).items() if v.is_floating_point())
        assert moved > 1e-3  # the training did change the weights, so equal weights mean equal training
        for k in theirs:
            torch.testing.assert_close(ours[k].float(), theirs[k].float(), rtol=1e-4, atol=2e-5, msg=k)
        for a, b in zip(batched[s]["history"], seq["history"]):
            assert a["epoch"] == b["epoch"] and a["lr"] == b["lr"] and a["train_acc"] == b["train_acc"]
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        np.testing.assert_allclose(trainer.evaluate(batched[s]["model"], test_idx)[0],
                                   trainer.evaluate(seq["model"], test_idx)[0], atol=1e-4)

    held = subjects[0]
    at = torch.as_tensor(np.flatnonzero(trainer.bank.subjects == held))
    trainer.bank.clips[at] = torch.randint(0, 256, trainer.bank.clips[at].shape, dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1))
    perturbed = train_folds(trainer, subjects, tmp_path / "b" / "foldbatch")
    for s in subjects:
        a, b = _state(batched[s]["model"]), _state(perturbed[s]["model"])
        same = all(torch.equal(a[k], b[k]) for k in a)
        assert same == (s == held), s


def test_a_stopped_run_continues_to_the_same_folds_and_its_folder_is_the_sequential_one(tiny_set, tmp_path):
    from training.compare import parameter_count
    from training.loso import run
    from training.report import oracle_scores
    from training.schemes import load_view_model

    # the whole run, fold-batched, recording the oracle; then a run stopped at its epoch-2 checkpoint and continued
    cfg = _config(tiny_set, tmp_path / "run", "fold_batch=true", "oracle=true", "checkpoint_every=2")
    lines = []
    summary = run(cfg, log=lines.append, progress=False)
    assert any("4 folds at once" in x for x in lines)
    out = tmp_path / "run"
    assert not (out / "foldbatch").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 20 and summary["uf1"] == results["uf1"] and (out / "report.md").exists()
    folds = [json.loads(p.read_text()) for p in sorted(out.glob("folds/subject_*/result.json"))]
    assert len(folds) == 4 and all(len(f["history"]) == 3 and "test_pred" in f["history"][0] for f in folds)
    assert oracle_scores(folds, results["protocol"]["classes"])["uf1"] == results["oracle"]["uf1"]
    assert parameter_count(out) == 1683
    assert len(list((out / "tensorboard").glob("subject_*/events.out.tfevents.*"))) == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(sorted((out / "tensorboard").glob("subject_*"))[0]))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["loss", "lr", "test_subject_acc", "train_acc"]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([h["loss"] for h in folds[0]["history"]])

    trainer = Trainer(cfg, tmp_path / "r", log=lambda *_: None, progress=False)
    subjects = sorted(set(trainer.bank.subjects.tolist()))
    trainer.cfg["train"]["epochs"] = 2  # stops right after the checkpoint at epoch 2, as a kill there would
    train_folds(trainer, subjects, tmp_path / "r" / "foldbatch")
    assert (tmp_path / "r" / "foldbatch" / "state.pt").exists()
    trainer.cfg["train"]["epochs"] = 3
    # TensorBoard reads a folder's event files in name order, whose first key is the second they were opened in:
    # the continued session opens its files in a later second than the stopped one, as a real resume does
    time.sleep(1 - time.time() % 1 + 0.01)
    resumed = train_folds(trainer, subjects, tmp_path / "r" / "foldbatch")
    for f, s in zip(folds, subjects):
        model, _ = load_view_model(out / "folds" / f"subject_{s}" / "model.pt")
        a, b = _state(model), _state(resumed[s]["model"])
        assert all(torch.equal(a[k], b[k]) for k in a), s
        assert [h["loss"] for h in f["history"]] == [h["loss"] for h in resumed[s]["history"]]
        # the stopped and continued folds' TensorBoard curves (training.loop) are the whole run's: every epoch once
        curves = []
        for folder in (out, tmp_path / "r"):
            events = EventAccumulator(str(folder / "tensorboard" / f"subject_{s}"))
            events.Reload()
            curves.append({tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]})
        assert curves[1] == curves[0] and [step for step, _ in curves[1]["loss"]] == [1, 2, 3], s


def test_configs_it_cannot_batch_run_sequentially_with_one_line(tiny_set, tmp_path):
    from training.loso import run

    cfg = _config(tiny_set, tmp_path / "fsb", "fold_batch=true", "scheme.type=fsb", "train_views=OL",
                  "test_views=OL", "fsb_head=mlp", "epochs=1")
    lines = []
    run(cfg, log=lines.append, progress=False)
    said = [x for x in lines if x.startswith("train.fold_batch:")]
    assert said == ["train.fold_batch: FSB's MLP head has no fold-batched form (the linear one has); training the "
                    "folds one by one"]
    assert len(list((tmp_path / "fsb" / "folds").glob("subject_*/result.json"))) == 4


def test_the_stacked_network_is_each_folds_ststnet_also_with_negative_batch_norm_scales():
    """Forward, gradients and evaluation of STSTNetFolds against each fold's own STSTNet on its own clips, with some
    batch-norm scales negative (there the max-pool after batch norm is a min-pool before it)."""
    from training.foldbatch import STSTNetFolds
    from training.models.ststnet import STSTNet

    torch.manual_seed(0)
    nets = [STSTNet(3, dropout=0.0) for _ in range(2)]
    with torch.no_grad():
        nets[1].streams[2].weight[:5] *= -1
        nets[0].streams[2].weight[3] = -0.5
    stack = STSTNetFolds(nets)
    x = torch.randn(6, 3, 1, 28, 28)
    weight = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]], dtype=torch.float32)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = stack(x, weight)
    torch.nn.functional.cross_entropy(logits[0, :4], y[:4]).add(
        torch.nn.functional.cross_entropy(logits[1, 1:], y[1:])).backward()
    for f, (net, mine) in enumerate(zip(nets, (slice(0, 4), slice(1, 6)))):
        net.train()
        out = net(x[mine])
        torch.nn.functional.cross_entropy(out, y[mine]).backward()
        torch.testing.assert_close(logits[f, mine], out, rtol=1e-4, atol=1e-5)
        ch = slice(16 * f, 16 * f + 16)
        conv, bn = net.streams[0], net.streams[2]
        for got, want in ((stack.conv_w.grad[ch], conv.weight.grad.view(16, 27)),
                          (stack.conv_b.grad[ch], conv.bias.grad), (stack.bn_w.grad[ch], bn.weight.grad),
                          (stack.bn_b.grad[ch], bn.bias.grad),
                          (stack.fc_w.grad[f], net.fc.weight.grad), (stack.running_var[ch], bn.running_var)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        net.eval()
        stack.eval()
        torch.testing.assert_close(stack.evaluate(x[None].expand(2, *x.shape))[f], net(x), rtol=1e-4, atol=1e-5)
        stack.train()


@pytest.mark.parametrize("scheme", ["sbml", "fsb"])
def test_the_compiled_step_is_the_autograd_step(scheme):
    """One step of training.foldkernel against STSTNetFolds + autograd on the same batch and the same dropout bytes:
    loss, logits, every gradient and the batch-norm statistics; with held-out clips (weight 0), two views (SBML:
    weighted differently, each image its own loss; FSB: one fused head over both views' features, one loss per clip),
    negative batch-norm scales (min-pools), 27-px images (an odd grid: tiles past its edge) and dropout 0.5; the same
    to the bit on one thread or two."""
    from training import foldkernel
    from training.foldbatch import STSTNetFolds
    from training.models.ststnet import STSTNet

    torch.manual_seed(0)
    nets = [STSTNet(3, image_size=27, dropout=0.5) for _ in range(5)]
    with torch.no_grad():
        for i, net in enumerate(nets):
            net.streams[2].weight.uniform_(-1.0, 1.5)  # about 2 in 5 channels scale negatively
            net.streams[2].bias.uniform_(-0.5, 0.5)
            net.fc.weight.mul_(20 + i)
    heads = None
    if scheme == "fsb":
        heads = [torch.nn.Linear(2 * net.fc.in_features, 3) for net in nets]
        with torch.no_grad():
            for i, head in enumerate(heads):
                head.weight.mul_(20 + i)
    a, b = STSTNetFolds(nets, heads), STSTNetFolds(nets, heads)
    assert a.blocks == (2 if scheme == "fsb" else 1) and a.fc_w.shape == (5, 3, 400 * a.blocks)
    assert foldkernel.why_not(b, torch.device("cpu")) is None, foldkernel.why_not(b, torch.device("cpu"))
    n = 10
    x = torch.rand(2 * n, 3, 1, 27, 27) - 0.4  # two views of n clips
    weight = (torch.rand(5, n) > 0.25).float()
    weight[4] = 0  # a fold that skips the step: no gradient, no statistics
    y = torch.randint(0, 3, (n,))
    count = weight.sum(1).clamp_min(1)
    torch.manual_seed(5)
    logits = a(x, weight.repeat(1, 2)).view(5, 2, n, 3)
    if scheme == "fsb":  # a clip's logits: its two images' shares summed
        ce = torch.nn.functional.cross_entropy(logits.sum(1).flatten(0, 1), y.repeat(5), reduction="none").view(5, n)
        per_fold = (ce * weight).sum(1) / count
        coef, labels = weight / count[:, None], y
    else:
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 2), y.repeat(10), reduction="none").view(5, 2, n)
        per_fold = (1.0 * (ce[:, 0] * weight).sum(1) + 0.5 * (ce[:, 1] * weight).sum(1)) / count
        coef, labels = torch.cat([1.0 * weight, 0.5 * weight], 1) / count[:, None], y.repeat(2)
    per_fold.sum().backward()
    torch.manual_seed(5)
    bits = b.dropout_bits(2 * n)
    out = foldkernel.step(b, x[:, :, 0], weight.repeat(1, 2), coef, labels, bits, threads=1)
    assert torch.isfinite(per_fold).all()  # the fold that skips the step too
    torch.testing.assert_close(out["loss"], per_fold.detach(), rtol=1e-5, atol=1e-6)
    kept = weight.bool()[:, None].expand(5, 2, n)
    # float rounding: an FSB share carries no bias, so some are small sums of large terms (atol to their scale)
    atol = 1e-5 if scheme == "sbml" else 2e-7 * float(logits.detach().abs().max())
    torch.testing.assert_close(out["logits"].view(5, 2, n, 3)[kept], logits.detach()[kept], rtol=1e-5, atol=atol)
    for name in ("conv_w", "conv_b", "bn_w", "bn_b", "fc_w", "fc_b"):
        want, got = getattr(a, name).grad, getattr(b, name).grad
        rows = 4 if name.startswith("fc") else 64  # folds 0-3 (fold 4 skipped the step)
        scale = float(want[:rows].abs().max())
        assert scale > 1e-3, name
        # float rounding, to the gradient's own scale: batch norm's backward subtracts large, nearly equal terms
        torch.testing.assert_close(got[:rows], want[:rows], rtol=1e-4, atol=5e-5 * scale, msg=name)
        assert torch.count_nonzero(got[rows:]) == 0, name
    b.track(weight.repeat(1, 2), out["mean"], out["var"])
    torch.testing.assert_close(b.running_mean, a.running_mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(b.running_var, a.running_var, rtol=1e-5, atol=1e-7)
    grads = [getattr(b, name).grad.clone() for name in ("conv_w", "fc_w")]
    again = foldkernel.step(b, x[:, :, 0], weight.repeat(1, 2), coef, labels, bits, threads=2)
    assert torch.equal(again["logits"], out["logits"]) and torch.equal(b.conv_w.grad, grads[0])
    assert torch.equal(b.fc_w.grad, grads[1])


def test_without_a_c_compiler_the_run_says_so_and_trains_by_autograd(tmp_path, monkeypatch):
    from training import foldkernel
    from training.foldbatch import STSTNetFolds, use_compiled
    from training.models.ststnet import STSTNet

    monkeypatch.setattr(foldkernel, "_STATE", {})
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(foldkernel.shutil, "which", lambda name: None)
    stack = STSTNetFolds([STSTNet(3) for _ in range(2)])
    lines = []
    trainer = type("T", (), {"device": torch.device("cpu")})()
    assert use_compiled(trainer, stack, lines.append) is False
    assert lines == ["fold-batched: each step by PyTorch's autograd (the compiled step could not be built "
                     "(no C compiler (cc, gcc or clang; or set CC)))"]
    assert not list((tmp_path / "cache").glob("*.so"))
