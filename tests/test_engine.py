"""The training engine on its own: seeds, one step, one epoch, evaluation, resumable training; and the config
values cast and checked once at load."""

import copy
import time

import numpy as np
import pytest
import torch

from inference.errors import InputError
from training.config import DEFAULTS, check_config, load_config
from training.data import ClipBank
from training.engine import Trainer, backbone_digest, seed_for


def test_seeds_are_the_ones_runs_were_made_with():
    # the values of the former loso._seed: a resumed run (or a rerun) draws the same numbers as before
    assert seed_for(0, "fold", 3) == 1020520383994750181
    assert seed_for(seed_for(0, "fold", 3), 5) == 9221849691267411973
    assert seed_for("smote", 7) == 8458744527123655293
    assert seed_for(0, "fold", 3) != seed_for(0, "fold", 4)


def _config(**train) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(name="engine-test", data={"caches": [], "protocol": "smic"})
    cfg["model"]["name"] = "resnet3d_tiny"
    cfg["scheme"]["train_views"] = "OL"
    cfg["train"].update({"epochs": 2, "lr": 3e-3, "milestones": [1], "batch_size": 4, "n_frames": 4, "size": 24,
                         "rotation": 10.0, "scale": 1.1, "device": "cpu", "amp": "none", **train})
    return check_config(cfg)


def _bank(n: int = 10) -> ClipBank:
    rng = np.random.default_rng(5)
    clips = torch.from_numpy(rng.integers(0, 256, (n, 4, 28, 28, 3), dtype=np.uint8))
    labels = torch.as_tensor(np.arange(n) % 3, dtype=torch.int64)
    return ClipBank(clips, labels, np.arange(n) % 2 + 1, [f"smic:c{i}" for i in range(n)],
                    ("negative", "positive", "surprise"))


def _weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_one_epoch_and_evaluation(tmp_path):
    trainer = Trainer(_config(), tmp_path, log=lambda *_: None, progress=False, bank=_bank())
    assert str(trainer.device) == "cpu" and trainer.amp_dtype is None and not trainer.channels_last
    model = trainer.new_model(seed_for(0, "fold", 1))
    start = backbone_digest(model)
    assert trainer.init_backbone_sha256 == start
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    record = trainer.train_one_epoch(model, opt, trainer.bank.clips, trainer.bank.labels,
                                     torch.Generator().manual_seed(1))
    assert set(record) == {"loss", "train_acc"} and np.isfinite(record["loss"]) and 0 <= record["train_acc"] <= 1
    assert backbone_digest(model) != start  # it trained
    probs, per_view = trainer.evaluate(model, np.arange(7))
    assert probs.shape == (7, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert per_view.shape == (2, 7, 3)  # SBML: one row of probabilities per test view (O, L)


def test_the_same_seed_gives_the_same_step():
    trainer = Trainer(_config(), log=lambda *_: None, progress=False, bank=_bank())
    after = []
    for _ in range(2):
        model = trainer.new_model(7)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(3)
        loss, logits, y = trainer.train_step(model, opt, torch.tensor([0, 3, 4, 8]), trainer.bank.clips,
                                             trainer.bank.labels, gen)
        assert logits.shape == (4, 3) and y.tolist() == [0, 0, 1, 2] and loss.ndim == 0
        after.append(_weights(model))
    for k in after[0]:
        assert torch.equal(after[0][k], after[1][k]), k


def test_train_model_resumes_to_the_same_weights(tmp_path):
    """Stopped after epoch 1 (its state.pt kept), continued to epoch 3: the same model as 3 epochs in one go."""
    bank, idx = _bank(), np.arange(10)
    straight = Trainer(_config(epochs=3), tmp_path / "a", log=lambda *_: None, progress=False, bank=bank)
    one_go = straight.train_model("fold", tmp_path / "a" / "fold", idx, None, 11)
    first = Trainer(_config(epochs=1), tmp_path / "b", log=lambda *_: None, progress=False, bank=bank)
    first.train_model("fold", tmp_path / "b" / "fold", idx, None, 11)
    assert torch.load(tmp_path / "b" / "fold" / "state.pt", weights_only=True)["epoch"] == 1
    said = []
    time.sleep(1 - time.time() % 1 + 0.01)  # TensorBoard orders event files by the second they were opened in
    resumed = Trainer(_config(epochs=3), tmp_path / "b", log=said.append, progress=False, bank=bank)
    again = resumed.train_model("fold", tmp_path / "b" / "fold", idx, None, 11)
    assert said == ["fold: resuming at epoch 1"]
    assert [r["epoch"] for r in again["history"]] == [1, 2, 3] and again["history"] == one_go["history"]
    a, b = _weights(one_go["model"]), _weights(again["model"])
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert again["epoch"] == 3 and again["history"][-1]["lr"] == pytest.approx(3e-4)  # x0.1 after milestone 1
    # TensorBoard (training.loop): the resumed fold's curves are the one-go fold's, no epoch twice
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = []
    for run in ("a", "b"):
        events = EventAccumulator(str(tmp_path / run / "tensorboard" / "fold"))
        events.Reload()
        curves.append({tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]})
    assert sorted(curves[1]) == ["loss", "lr", "train_acc"] and curves[1] == curves[0]
    assert curves[1]["loss"] == [(r["epoch"], pytest.approx(r["loss"])) for r in one_go["history"]]


@pytest.mark.parametrize("milestones", [[], [1], [2, 4], [1, 1, 3], [30, 60, 80], [3, 1]])
@pytest.mark.parametrize("lr", [3e-3, 1e-3, 5e-5])
def test_the_loops_schedule_is_multisteplr_to_the_bit(milestones, lr):
    """training.loop.lr_at (the one schedule of both engines): the rates torch's MultiStepLR gives, float for float."""
    from training.loop import lr_at

    t = {"lr": lr, "milestones": milestones, "gamma": 0.1}
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    rates = [lr_at(t, 0)]
    for epoch in range(1, 90):
        opt.step()
        sched.step()
        rates.append(lr_at(t, epoch))
        assert rates[-1] == opt.param_groups[0]["lr"], epoch  # exact, not approximate
    assert rates[0] == lr and (rates[-1] < lr) == bool(milestones)


def test_config_values_are_cast_and_checked_once(tmp_path):
    tiny = "training/configs/tiny.yaml"
    cfg = load_config(tiny, ["data.caches=cache/x", "lr=1e-3", "epochs=3.0", "seed=7"])
    t = cfg["train"]
    assert cfg["data"]["caches"] == ["cache/x"]
    assert t["lr"] == 0.001 and isinstance(t["lr"], float)  # YAML reads 1e-3 as text; cast once, here
    assert t["epochs"] == 3 and isinstance(t["epochs"], int) and t["seed"] == 7
    assert t["rotation"] == 0.0 and t["flip"] is True and t["amp"] == "none"
    assert check_config(cfg) == cfg  # casting twice changes nothing
    for override, message in [
        ("epochs=0", "train.epochs must be a positive integer, got 0"),
        ("epochs=2.5", "train.epochs must be a positive integer, got 2.5"),
        ("batch_size=many", "train.batch_size must be a positive integer, got 'many'"),
        ("lr=0", "train.lr must be a positive number, got 0"),
        ("rotation=-5", "train.rotation must be a number of at least 0, got -5"),
        ("flip=maybe", "train.flip must be true or false, got 'maybe'"),
        ("milestones=5", "train.milestones must be a list of epoch numbers, got 5"),
        ("milestones=[5,x]", r"train.milestones\[1\] must be a positive integer, got 'x'"),
        ("amp=fp8", "train.amp must be auto, bf16 or none, got 'fp8'"),
        ("selection=best", "train.selection must be last or test_set_best, got 'best'"),
        ("scheme.type=mix", "scheme.type must be sbml or fsb, got 'mix'"),
        ("train_views=OX", "scheme.train_views: invalid view set 'OX'"),
        ("protocol=megc", "data.protocol must be smic, casme2, samm, composite or all, got 'megc'"),
        ("channels_last=sometimes", "train.channels_last must be true or false, got 'sometimes'"),
    ]:
        with pytest.raises(InputError, match=message):
            load_config(tiny, ["data.caches=[cache/x]", override])


def test_the_bench_times_the_engines_own_step(monkeypatch, capsys):
    from tools.bench import training as bench
    from training.engine import Trainer as EngineTrainer

    calls = []
    step = EngineTrainer.train_step

    def counted(self, *args, **kwargs):
        calls.append(args[2].tolist())  # the batch's clip indices
        return step(self, *args, **kwargs)

    monkeypatch.setattr(EngineTrainer, "train_step", counted)
    assert bench.main(["--model", "resnet3d_tiny", "--frames", "4", "--size", "24", "--cache-size", "28",
                       "--batch", "2", "--steps", "1", "--clips", "4", "--workers", "0", "--device", "cpu"]) == 0
    assert len(calls) == 3 + 1 and all(len(c) == 2 for c in calls)  # 3 warm-up steps, 1 timed
    out = capsys.readouterr().out
    assert "ours" in out and "baseline" in out and "speed-up" in out
