"""One spot-then-recognise pipeline (inference.recognise): the Python API (``Predictor.analyse``), the batch command
(``python -m inference``), the demo's analysis (``demo.app.Analyser``) and the spotting evaluation
(``training.spot_eval``) give the same answer for the same clip and mode — a short clip (classified whole), a
recording with micro-expressions among blinks (spotted), a recording whose face enters late (its intervals counted
from the recording's frames) — and a result prints as a short summary."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.errors import InputError
from inference.recognise import DEFAULT_MODE, NO_MICRO, Recogniser, Recognition
from inference.runtime import Predictor
from inference.spotting import SpotParams
from tests.recordings import recordings_fixture  # noqa: F401 — the session's recordings
from training.synth.faces import FaceSource
from training.synth.long import LongEvent, render

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "demo" / "default_model"
FPS = 30.0
MICROS = [LongEvent("micro", 45, 50, 56, "surprise"), LongEvent("micro", 125, 129, 135, "positive")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, recordings):  # noqa: F811 — the imported fixture
    """short.mp4: the 0.46 s example (one expression); one.mp4: 1.5 s at 30 fps, one expression from onset to offset
    as a lab clip (the datasets' clips, e.g. a CASME II clip made a video); take.mp4: 6 s, two micro-expressions among
    blinks; late.mp4: 1.6 s of a real photograph's face that walks in after 14 frames."""
    from inference.video import write_video

    folder = tmp_path_factory.mktemp("recognise")
    shutil.copy(ROOT / "demo" / "examples" / "surprise.mp4", folder / "short.mp4")
    one = FaceSource((480, 640), seed=11).micro(1, "surprise", 50, np.random.default_rng(3))
    write_video(folder / "one.mp4", one.frames[one.onset:one.offset + 1], FPS, crf=20)
    events = [LongEvent("blink", 20, 23, 27), MICROS[0], LongEvent("blink", 90, 92, 96), MICROS[1]]
    rec = render(FaceSource((160, 200), seed=5, face_fraction=0.6), 3, events, 180, FPS, np.random.default_rng(4))
    write_video(folder / "take.mp4", rec.frames, FPS)
    shutil.copy(recordings.late_entrance.path, folder / "late.mp4")
    return folder


@pytest.fixture(scope="module")
def predictor():
    return Predictor(PACKAGE, device="cpu", engine="onnxruntime")


def _batch(folder: Path, out: Path, *extra: str) -> dict[str, list[dict]]:
    from inference.__main__ import main

    assert main(["--model", str(PACKAGE), "--input", str(folder), "--output", str(out), "--workers", "0",
                 "--device", "cpu", "--engine", "onnxruntime", *extra]) == 0
    rows: dict[str, list[dict]] = {}
    for r in csv.DictReader(out.open()):
        rows.setdefault(Path(r["path"]).name, []).append(r)
    return rows


def _probs(labels, values) -> list[float]:
    return [round(float(values[k]), 5) for k in labels]


def _answer(result: Recognition, labels) -> tuple:
    """What a recognition says, in plain values: the mode and, per interval, its frames of the recording, kind,
    score, label and probabilities (or the whole clip's label and probabilities)."""
    d = result.as_dict()
    if d["mode"] == "whole":
        return "whole", d["prediction"]["label"], _probs(labels, d["prediction"]["probs"])
    return "spot", [(r["onset"], r["apex"], r["offset"], r["kind"], r["score"], r.get("label"),
                     _probs(labels, r["probs"]) if "probs" in r else None) for r in d["intervals"]]


def _batch_answer(rows: list[dict], labels) -> tuple:
    if rows[0]["mode"] == "whole":
        (row,) = rows
        return "whole", row["label"], _probs(labels, {k: row[f"prob_{k}"] for k in labels})
    assert rows[-1]["row"] == "summary"
    return "spot", [(int(r["onset"]), int(r["apex"]), int(r["offset"]), r["kind"], float(r["score"]),
                     r["label"] or None, _probs(labels, {k: r[f"prob_{k}"] for k in labels}) if r["label"] else None)
                    for r in rows[:-1]]


def test_every_entry_point_gives_the_same_answer(predictor, clips, tmp_path):
    from demo.app import Analyser
    from training.spot_eval import LongVideo, recording_preparer, spot_video

    labels = predictor.labels
    batch = _batch(clips, tmp_path / "rows.csv")
    analyser = Analyser(predictor)
    assert DEFAULT_MODE == "auto"
    for name, mode in (("short.mp4", "whole"), ("one.mp4", "whole"), ("take.mp4", "spot"), ("late.mp4", "spot")):
        api = predictor.analyse(clips / name)  # the default entry: auto mode
        demo = analyser.analyse(str(clips / name)).spot
        assert api.mode == demo.mode == mode, name
        answer = _answer(api, labels)
        assert _answer(demo, labels) == answer, name
        assert _batch_answer(batch[name], labels) == answer, name
        assert api.why and api.why == demo.why == batch[name][-1]["why"], (name, api.why)  # why, said alike
        if name == "one.mp4":  # the lab clip: classified whole, exactly as Predictor.predict does
            assert api.why.startswith("One movement rises from the start and falls back inside this 1.5 s clip")
            np.testing.assert_allclose(api.whole.probs, predictor.predict(clips / name).probs, rtol=0, atol=1e-6)
        if name == "take.mp4":
            assert api.why == "A 6.0 s recording is searched for micro-expressions"
        if mode == "spot":  # the spotting evaluation runs the same pipeline in spot mode (its own length limits)
            recogniser = Recogniser(predictor, SpotParams(), "spot", recording_preparer(predictor.crop))
            record = spot_video(LongVideo("casme_sq", 1, name, FPS, file=clips / name), recogniser)
            assert [(r["onset"], r["apex"], r["offset"], r["kind"], r["score"], r.get("label"),
                     _probs(labels, r["probs"]) if "probs" in r else None) for r in record["intervals"]] == answer[1]
    take = predictor.analyse(clips / "take.mp4")
    found = [(p.interval.onset, p.interval.offset) for p in take.micro]
    assert len(found) == 2 and all(p.prediction.top in labels for p in take.micro), take
    for event, (onset, offset) in zip(MICROS, found):
        assert abs(onset - event.onset) <= 4 and abs(offset - event.offset) <= 4, take
    late = predictor.analyse(clips / "late.mp4")
    assert late.first_frame >= 14 and late.notes[:1] == [NO_MICRO]  # a still face: nothing to report, and that's said


def test_whole_mode_is_the_same_everywhere_and_predict_is_it(predictor, clips, tmp_path):
    """``Predictor.predict`` classifies a recording whole: the pipeline's whole mode, as the batch command's and the
    demo's ``--mode whole``; by default (auto) the same recording is spotted instead."""
    from demo.app import Analyser

    labels = predictor.labels
    path = clips / "take.mp4"
    api = predictor.analyse(path, mode="whole")
    predicted = predictor.predict(path)
    np.testing.assert_allclose(predicted.probs, api.whole.probs, rtol=0, atol=1e-6)
    assert len(predicted.aligned) == predictor.n_frames  # resampled to the package's frame count, as always
    answer = _answer(api, labels)
    assert _answer(Analyser(predictor).analyse(str(path), mode="whole").spot, labels) == answer
    rows = _batch(clips, tmp_path / "whole.csv", "--mode", "whole")
    assert _batch_answer(rows["take.mp4"], labels) == answer
    assert predictor.analyse(path).mode == "spot"


def test_a_result_prints_as_a_summary(predictor, clips):
    spotted = predictor.analyse(clips / "take.mp4")
    text = repr(spotted)
    assert len(text) < 600 and text.startswith("Recognition(mode='spot', source='take.mp4', frames=180")
    assert text.count("micro ") == 2 and "→" in text and "face_coverage=" in text
    assert len(repr(spotted.micro[0])) < 150 and len(repr(spotted.micro[0].prediction)) < 200
    whole = predictor.analyse(clips / "short.mp4")
    assert repr(whole).startswith("Recognition(mode='whole', source='short.mp4'") and len(repr(whole)) < 200
    assert whole.predictions == [whole.whole] and spotted.predictions == [p.prediction for p in spotted.micro]


def test_the_pipeline_defaults_and_refusals(predictor, clips):
    recogniser = Recogniser(predictor, SpotParams(margin=0.3))
    assert recogniser.params.margin == predictor.crop.margin  # the regions sit where the package's crop puts them
    assert recogniser.mode == "auto" and recogniser.preparing.mode == "auto"
    with pytest.raises(InputError, match="unknown mode"):
        Recogniser(predictor, mode="fast")
    with pytest.raises(InputError, match="no such learned spotter"):
        predictor.analyse(clips / "take.mp4", spotter=clips / "missing.json")
    spot_only = Recogniser(None, preparer=predictor.preparer, mode="spot")(clips / "take.mp4")
    assert [p.interval for p in spot_only.intervals] == [p.interval for p in predictor.analyse(clips / "take.mp4")
                                                         .intervals]
    assert all(p.prediction is None for p in spot_only.intervals)


def test_a_still_face_gets_no_verdict_anywhere(predictor, face_image, tmp_path):
    """A photo as a clip (one real face, every frame the same): its min-max flow image would be all zeros and an RGB
    model would classify a face that does nothing, so whole mode classifies nothing and says why — the API (None,
    the note), the batch command (an ok row with an empty label), the demo's summary. With the light growing slowly
    over the same frames the clip is classified again."""
    import cv2

    from demo.app import Analyser, summary_markdown
    from inference.recognise import STILL, still

    folder = tmp_path / "photo"
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"img{i:02d}.png"), face_image[..., ::-1])
    result = predictor.analyse(folder)
    assert result.mode == "whole" and result.whole is None and result.predictions == []
    assert result.notes[0] == STILL and result.prepared.faces_seen == 1 and "whole=None" in repr(result)
    assert predictor.predict(folder) is None
    rows = _batch(folder, tmp_path / "rows.csv")["photo"]
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["label"] == ""
    assert STILL in rows[0]["notes"] and all(rows[0][f"prob_{k}"] == "" for k in predictor.labels)
    shown = Analyser(predictor).analyse(str(folder))
    assert shown.prediction is None and shown.fused == {} and STILL not in shown.notes
    assert summary_markdown(shown).startswith(f"**Nothing to classify**: {STILL}")
    for i in range(1, 10):  # the light grows slowly (a cut, a jump, would leave one still shot)
        brighter = np.clip(face_image.astype(int) + i, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"img{i:02d}.png"), brighter[..., ::-1])
    assert not still(predictor.prepare(folder).frames)
    assert predictor.predict(folder).top in predictor.labels
