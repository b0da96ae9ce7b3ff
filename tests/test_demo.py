"""The Gradio demo: its analysis function directly, the running server through gradio_client for every kind of
bad input, and the page end to end in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from demo.app import DEFAULT_MODEL, EXAMPLES, TEMP_ROOT_NAME, Analyser, RunFolder, card_facts, contact_sheet
from inference.errors import InputError
from inference.runtime import Predictor
from inference.video import write_video
from tests.helpers import astronaut, two_faces
from tests.recordings import recordings_fixture  # noqa: F401 — the session fixture `recordings`

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def examples() -> list[Path]:
    """The micro-expression examples, one per class (named after it); recording.mp4, the one to spot, aside."""
    found = sorted(p for p in EXAMPLES.glob("*.mp4") if p.name != "recording.mp4")
    assert found, f"no example clips in {EXAMPLES}; regenerate them with python tools/make_demo_examples.py"
    return found


def true_label(clip: Path) -> str:
    return clip.stem.split("_")[0]


# ----------------------------------------------------------------------------- bad clips, made fresh
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("demo_clips")
    rng = np.random.default_rng(5)
    out = {}
    out["text"] = d / "notes.mp4"
    out["text"].write_text("these are my notes, not a video\n")
    data = examples()[0].read_bytes()
    out["corrupt"] = d / "cut.mp4"
    out["corrupt"].write_bytes(data[: len(data) * 2 // 5])
    out["noface"] = d / "wall.mp4"
    write_video(out["noface"], rng.integers(90, 160, (12, 240, 320, 3), dtype=np.uint8), fps=30)
    out["long"] = d / "long.mp4"  # 4 s at 10 fps: over the test server's 3 s limit
    write_video(out["long"], np.repeat(rng.integers(0, 255, (1, 96, 128, 3), dtype=np.uint8), 40, axis=0), fps=10)
    out["big"] = d / "big.mp4"  # 1.5 MB: over the test server's 1 MB upload limit
    out["big"].write_bytes(rng.integers(0, 255, 1_500_000, dtype=np.uint8).tobytes())
    canvas, _ = two_faces(astronaut())
    out["two"] = d / "two_faces.mp4"
    write_video(out["two"], np.repeat(canvas[None], 12, axis=0), fps=30)
    out["take"] = spot_take(d / "take.mp4")
    return out


SPOT_MICRO = (40, 45, 51)  # onset, apex, offset (frames) of the micro-expression in spot_take, at 30 fps


def spot_take(path: Path) -> Path:
    """2.5 s of a synthetic face with a blink and one micro-expression at known frames (training.synth.long)."""
    from training.synth.faces import FaceSource
    from training.synth.long import LongEvent, render

    events = [LongEvent("blink", 10, 13, 17), LongEvent("micro", *SPOT_MICRO, "surprise")]
    rec = render(FaceSource((160, 200), seed=5, face_fraction=0.6), 3, events, 75, 30.0, np.random.default_rng(4))
    write_video(path, rec.frames, 30.0)
    return path


# ----------------------------------------------------------------------------- the analysis, called directly
@pytest.fixture(scope="module")
def analyser() -> Analyser:
    return Analyser(Predictor(DEFAULT_MODEL, device="cpu"))


def test_examples_are_analysed_into_everything_the_page_shows(analyser):
    for clip in examples():
        result = analyser.analyse(str(clip))
        p = result.prediction
        assert p.top == true_label(clip), f"{clip.name}: {result.fused}"
        assert set(result.fused) == set(p.labels) and abs(sum(result.fused.values()) - 1) < 1e-4
        assert p.faces_seen == 1 and not result.notes
        assert p.motion is None and result.motion is None  # an RGB package: no motion input to show
        # three views as 2×2 contact sheets; L and R are mirror-symmetric, O (a real face) is not exactly
        assert set(result.sheets) == {"O", "L", "R"}
        for v, sheet in result.sheets.items():
            assert sheet.dtype == np.uint8 and sheet.shape == (260, 260, 3), v
            tile = sheet[:128, :128].astype(int)
            asym = np.abs(tile - tile[:, ::-1]).mean()
            assert (asym < 6) if v in "LR" else (asym > 6), (v, asym)
        assert not np.array_equal(result.sheets["L"], result.sheets["R"])
        # SBML: each view's own probabilities, one row per (view, label)
        assert [(r["view"], r["label"]) for r in result.per_view] == [(v, k) for v in p.views for k in p.labels]
        assert set(p.timings) >= {"decode", "face", "resample", "model", "fuse", "total"}


def test_test_views_can_be_chosen(analyser):
    clip = str(examples()[0])
    result = analyser.analyse(clip, "OL")
    assert result.prediction.views == "OL" and [r["view"] for r in result.per_view] == ["O"] * 3 + ["L"] * 3
    full = analyser.analyse(clip, "OLR").prediction.per_view
    # the fused OL result is the softmax of the O and L logits summed: check it against the per-view outputs
    logp = np.log(full["O"]) + np.log(full["L"])
    fused = np.exp(logp - logp.max()) / np.exp(logp - logp.max()).sum()
    assert np.allclose(result.prediction.probs, fused, atol=1e-4)


def test_stages_are_reported_in_order(analyser):
    seen = []
    analyser.analyse(str(examples()[0]), on_stage=seen.append)
    assert seen == ["decode", "face", "model"]


def test_bad_inputs_raise_a_clear_input_error(analyser, clips):
    with pytest.raises(InputError, match="No clip was given"):
        analyser.analyse(None)
    with pytest.raises(InputError, match="not a readable video") as e:
        analyser.analyse(str(clips["text"]))
    assert str(e.value).startswith("notes.mp4:"), "the message names the upload, not the server's temporary path"
    with pytest.raises(InputError, match="face"):
        analyser.analyse(str(clips["noface"]))


def test_several_faces_are_reported(analyser, clips):
    result = analyser.analyse(str(clips["two"]))
    # said once, by the face track's own note (the demo no longer adds a second one of its own)
    assert result.prediction.faces_seen == 2 and [n for n in result.notes if "faces were" in n] == [
        "2 faces were seen together; the largest, most visible one was used"]


def test_card_facts_say_what_the_default_model_is(analyser):
    text = card_facts(analyser.predictor, "demo/default_model")
    assert "synthetic faces only" in text and "not a micro-expression recogniser for real people" in text
    assert "LOSO | UF1" in text and "subjects" in text
    assert all(label in text for label in analyser.predictor.labels)


def test_card_shows_no_server_paths_and_no_empty_header(analyser):
    text = card_facts(analyser.predictor, str(DEFAULT_MODEL))
    assert str(ROOT) not in text and "| package | the bundled demo package |" in text
    assert "| package | `smic-v2` |" in card_facts(analyser.predictor, "/srv/models/smic-v2")
    assert "| package | `hf://lab/mer-smic@v1` |" in card_facts(analyser.predictor, "hf://lab/mer-smic@v1")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| detail | value |" and table[1] == "| --- | --- |"
    plain = text.split("| detail |")[0]  # the plain words come first: what it recognises, how reliable, trained on
    assert all(w in plain for w in ("What it recognises", "How reliable", "Trained on")), plain
    assert "UF1 0." not in plain and "selection" not in plain and "cache" not in text
    assert all(cell.strip() for line in table for cell in line.strip("|").split("|")), table


def test_recordings_get_their_quality_notes(analyser, recordings):
    """What the face track found is said beside the verdict: frames left out, shots, a single frame."""
    late = analyser.analyse(str(recordings.late_entrance.path), mode="whole")  # 1.6 s, a still face: auto spots it
    spotted = analyser.analyse(str(recordings.late_entrance.path))
    assert spotted.mode == "spot" and set(late.notes) <= set(spotted.notes)  # spotted: the same face-track notes
    q = late.prediction.quality
    assert q.frames_used[1] == 39 and 14 <= q.frames_used[0] <= 22  # the person is wholly in from frame 20
    assert any(n.startswith("The face is visible in") for n in late.notes), late.notes
    one = analyser.analyse(str(recordings.one_frame.path))
    assert any(n.startswith("One frame holds no motion") for n in one.notes), one.notes


def test_contact_sheet_layout():
    frames = np.stack([np.full((10, 10, 3), i * 20, np.uint8) for i in range(8)])
    sheet = contact_sheet(frames, n=4, size=16, gap=2)
    assert sheet.shape == (34, 34, 3)
    assert [sheet[0, 0, 0], sheet[0, 18, 0], sheet[18, 0, 0], sheet[18, 18, 0]] == [0, 40, 100, 140]


# ----------------------------------------------------------------------------- the running server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *args: str, command: tuple[str, ...] = ("-m", "demo")):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.temp = tmp / "gradio-temp"
        self.log = tmp / "server.log"
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.temp), "GRADIO_ANALYTICS_ENABLED": "False",
               "PORT": str(self.port)}
        env.pop("DEMO_MODEL", None)
        self.proc = subprocess.Popen([sys.executable, *command, "--port", str(self.port), *args],
                                     cwd=ROOT if command[0] == "-m" else tmp, env=env,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180.0) -> Server:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the demo did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two demos started at once: `python -m demo` with tight limits, and the Hugging Face Space entry point
    (run as a script from another folder, as Spaces do) with quick clean-up of uploads."""
    main_tmp = tmp_path_factory.mktemp("demo_server")
    stale = main_tmp / "gradio-temp" / TEMP_ROOT_NAME / "4242-earlier-run"  # what a killed server left behind
    stale.mkdir(parents=True)
    (stale / "face.mp4").write_bytes(b"an upload of an earlier run")
    main = Server(main_tmp, "--max-seconds", "3", "--max-upload-mb", "1", "--queue-size", "2")
    quick = Server(tmp_path_factory.mktemp("demo_quick"), "--keep-files", "5",
                   command=(str(ROOT / "demo" / "space.py"),))
    try:
        yield main.wait(), quick.wait()
    finally:
        main.stop()
        quick.stop()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


def _call(client, path, views="OLR", mode="auto"):
    """/analyse's outputs: label, face, left, right, chart, summary, notes, timings."""
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)) if path else None, views, mode, api_name="/analyse")


def test_server_classifies_an_example(client):
    clip = examples()[-1]
    label, face, left, right, chart, summary, notes, timings = _call(client, clip)
    assert label["label"] == true_label(clip)
    assert all(Path(p).stat().st_size > 0 for p in (face, left, right))
    assert len(chart["value"]["data"]) == 9 and f"**{true_label(clip)}**" in summary and "model" in timings
    assert "**mode: whole** (a 0.46 s clip (under 1 s) is one expression)" in summary and notes == ""


@pytest.mark.parametrize("kind, message", [
    ("text", "notes.mp4: not a readable video"),
    ("corrupt", "cut.mp4"),
    ("noface", "no face"),
    ("long", "more than the limit of 3 s"),
    (None, "No clip was given"),
])
def test_server_explains_bad_input(client, clips, kind, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as e:
        _call(client, clips[kind] if kind else None)
    text = str(e.value)
    assert message.lower() in text.lower() and "Traceback" not in text and "/gradio-temp/" not in text
    assert "--max" not in text  # a visitor has no command line


def test_server_messages_speak_to_a_visitor(client, recordings, tmp_path):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"webcam.webm: the clip lasts at least 3.1 s, more than the limit of 3 s. "
                                       r"Trim it to the expression.$"):
        _call(client, recordings.webm_without_duration.path)  # no duration in the file: limited as it is decoded
    photo = tmp_path / "face.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(AppError) as e:
        _call(client, photo)
    assert "folder" not in str(e.value) and "video" in str(e.value)


def test_server_says_what_the_verdict_rests_on(client, recordings):
    *_, summary, notes, _ = _call(client, recordings.late_entrance.path)
    assert "face coverage: " in summary and "shots: 1" not in summary and "shot: 1" in summary
    assert "⚠ The face is visible in" in notes and "Frames left out: no face" in notes  # the one place for notes
    assert "⚠" not in summary


def test_server_logs_a_refused_clip_in_one_line(server):
    log = server.log.read_text()
    refused = [line for line in log.splitlines() if " refused: " in line]
    assert any(line.endswith("refused: notes.mp4: not a readable video (Invalid data found when processing input). "
                              "The file is corrupt, truncated, or not a video.") for line in refused), refused
    assert any("refused: No clip was given" in line for line in refused) and "/gradio-temp/" not in "".join(refused)
    assert "Traceback" not in log, log[-3000:]


def _value(update):
    return update["value"] if isinstance(update, dict) and update.get("__type__") == "update" else update


def test_server_spots_a_recording_and_shows_a_chosen_interval(client, clips):
    """A 2.5 s recording is spotted: the verdict is the micro-expression's, the timeline (motion, face presence,
    intervals) and the table come from the /timeline event of the same session, and /interval shows one."""
    label, face, left, right, chart, summary, notes, _ = _call(client, clips["take"])
    assert summary.startswith("**1 micro-expression** spotted in 2.5 s; showing it (row #1 of the table, ")
    assert "**mode: spot** (its movement is over early" in summary and "searched for micro-expressions" in summary
    assert label["label"] in ("negative", "positive", "surprise") and len(chart["value"]["data"]) == 9
    plot, table, choice = (_value(x) for x in client.predict(api_name="/timeline"))  # gr.update()s: their values
    from PIL import Image

    image = np.asarray(Image.open(plot["path"] if isinstance(plot, dict) else plot))
    assert image.shape[:2] == (240, 960) and len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10
    rows = table["data"]
    assert table["headers"][:5] == ["#", "start s", "apex s", "end s", "kind"] and len(rows) == 1, table
    start, end = float(rows[0][1]), float(rows[0][3])
    assert rows[0][4] == "micro" and abs(start - SPOT_MICRO[0] / 30) < 0.1 and abs(end - (SPOT_MICRO[2] + 1) / 30) < 0.1
    assert choice.startswith("#1 · ") and choice.endswith(rows[0][6])
    chosen = client.predict(choice, api_name="/interval")
    assert chosen[0]["label"] == rows[0][6] and Path(chosen[1]).stat().st_size > 0 and "row #1" in chosen[5]
    assert rows[0][1].count(".") == 1 and len(rows[0][1].split(".")[1]) == 2 and rows[0][7].endswith("%"), rows


def test_server_outputs_are_named_in_its_api(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/motion" not in named and "/interval_motion" not in named  # an RGB package has no motion image
    api = named["/analyse"]
    labels = [r["label"] for r in api["returns"]]
    assert "Summary" in labels and "Timings" in labels and not any(x.startswith("value_") for x in labels), labels


def test_stale_uploads_of_earlier_runs_are_removed(server):
    root = server.temp / TEMP_ROOT_NAME
    assert not (root / "4242-earlier-run").exists()
    assert "removed 1 temporary folder(s) left by earlier runs" in server.log.read_text()
    assert [p.name.split("-")[0] for p in root.iterdir()] == [str(server.proc.pid)]  # its own run's folder only


def test_run_folders_of_live_servers_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    first = RunFolder()
    assert os.environ["GRADIO_TEMP_DIR"] == str(first.path) and first.path.parent == tmp_path / TEMP_ROOT_NAME
    (first.path / "upload.mp4").write_bytes(b"x")
    second = RunFolder(tmp_path)  # another server beside the first: the first one's folder is locked, so kept
    assert (first.path / "upload.mp4").exists() and not second.removed
    second.close()
    assert not second.path.exists() and first.path.exists()
    first.close()


def test_server_refuses_an_upload_over_the_size_limit(server, client, clips):
    import httpx

    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        _call(client, clips["big"])  # gradio_client reads the limit from the server and refuses first
    r = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.mp4", clips["big"].read_bytes())})
    assert r.status_code == 413 and "maximum allowed size" in r.text  # and so does the server itself


def test_server_notes_several_faces_and_keeps_serving(client, clips):
    *_, summary, notes, _ = _call(client, clips["two"])
    assert "2 faces were seen together; the largest, most visible one was used" in notes
    assert (summary + notes).count("faces were") == 1  # one note, the face track's
    label, *_ = _call(client, examples()[0])  # after every error above, the server still answers
    assert label["label"] == true_label(examples()[0])


def test_queue_is_bounded(client):
    from gradio_client import handle_file

    jobs = [client.submit(handle_file(str(examples()[0])), "O", api_name="/analyse") for _ in range(6)]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes.append("done")
        except Exception as e:  # noqa: BLE001 — the queue-full refusal is what we look for
            outcomes.append(str(e))
    assert outcomes.count("done") >= 1
    refused = [o for o in outcomes if o != "done"]
    assert refused and all("queue" in o.lower() and "full" in o.lower() for o in refused), outcomes


def test_uploads_are_deleted_after_keep_files(servers, clips):
    from gradio_client import Client

    quick = servers[1]
    client = Client(quick.url, verbose=False)
    *_, summary, _, _ = _call(client, clips["two"])  # not an example: the app keeps its own cached copies of those
    assert "faces seen: 2" in summary
    own = {e.name for e in EXAMPLES.glob("*.mp4")}  # the examples, recording.mp4 among them
    uploads = lambda: [p for p in quick.temp.rglob("*") if p.is_file() and p.name not in own]  # noqa: E731
    assert uploads(), "the upload and the result images live in GRADIO_TEMP_DIR while fresh"
    end = time.monotonic() + 30
    while uploads() and time.monotonic() < end:
        time.sleep(1)
    assert not uploads(), f"still there after 30 s: {uploads()}"


def test_sigterm_removes_the_uploads(servers, clips):
    import httpx

    quick = servers[1]
    r = httpx.post(quick.url + "gradio_api/upload", files={"files": ("two_faces.mp4", clips["two"].read_bytes())})
    assert r.status_code == 200 and Path(r.json()[0]).exists()
    quick.stop()  # SIGTERM, as service managers and container runtimes stop a server
    assert quick.proc.returncode == 0, quick.log.read_text()[-2000:]
    assert not Path(r.json()[0]).exists()
    assert not [p for p in quick.temp.rglob("*") if p.is_file()], list(quick.temp.rglob("*"))


# ----------------------------------------------------------------------------- the page in a real browser
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get update && apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _open(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.goto(server.url)
    page.wait_for_selector("#analyse", timeout=60_000)
    return page


def test_page_end_to_end_in_chromium(browser, server):
    clip = examples()[0]
    page = _open(browser, server)
    assert "synthetic faces only" in page.inner_text("#card")
    # the synthetic-weights warning sits right above the verdict, on the first screen of a laptop (1280x800)
    warning, verdict = page.locator("#synthetic-warning").bounding_box(), page.locator("#label").bounding_box()
    assert "synthetic faces only" in page.inner_text("#synthetic-warning")
    assert warning["y"] + warning["height"] <= verdict["y"] + 1 and warning["y"] + warning["height"] < 800
    assert warning["x"] < verdict["x"] + verdict["width"] and verdict["x"] < warning["x"] + warning["width"]
    headers = page.locator("#card th").all_inner_texts()
    assert headers and all(h.strip() for h in headers), headers
    page.locator("#clip input[type=file]").set_input_files(str(clip))
    page.wait_for_selector("#clip video", timeout=30_000)
    page.click("#analyse")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('faces seen')", timeout=120_000)
    top = page.inner_text("#label").split("\n")
    assert true_label(clip) in top[:3], top
    for v in "olr":  # the three view images really decoded in the browser
        page.wait_for_function(f"(() => {{ const i = document.querySelector('#view-{v} img');"
                               f" return i && i.complete && i.naturalWidth === 260; }})()", timeout=30_000)
    page.wait_for_selector("#per-view svg .mark-rect path", timeout=30_000)
    assert "model" in page.inner_text("#timings")
    assert "face coverage: 100%" in page.inner_text("#summary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
    page.close()


def test_page_shows_the_timeline_and_the_interval_table(browser, server, clips, tmp_path):
    page = _open(browser, server)
    page.locator("#clip input[type=file]").set_input_files(str(clips["take"]))
    page.wait_for_selector("#clip video", timeout=30_000)
    page.click("#analyse")
    page.wait_for_function("(() => { const i = document.querySelector('#timeline img');"
                           " return i && i.complete && i.naturalWidth === 960; })()", timeout=120_000)
    page.wait_for_function("document.querySelector('#intervals') && "
                           "document.querySelector('#intervals').innerText.includes('micro')", timeout=30_000)
    assert "micro-expression** spotted" not in page.inner_text("#summary")  # rendered as bold, not raw Markdown
    assert "1 micro-expression spotted in 2.5 s" in page.inner_text("#summary")
    assert page.locator("#interval-choice").is_visible()
    page.screenshot(path=str(tmp_path / "demo-timeline.png"), full_page=True)
    assert (tmp_path / "demo-timeline.png").stat().st_size > 10_000
    page.close()


def _inside(page, selector: str, viewport: dict) -> dict:
    """The element's box, asserted wholly inside the viewport (what a visitor sees without scrolling)."""
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1 and \
        box["y"] + box["height"] <= viewport["height"] + 1, (selector, box, viewport)
    return box


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_page_shows_verdict_reliability_and_timeline_on_one_screen(browser, server, clips, viewport):
    """A laptop and a phone: after the analysis of a recording (2.5 s: a blink, a micro-expression), the reliability
    line, the verdict and the timeline are all on the screen at once; the warnings sit in one block (no toast); the
    examples are named."""
    page = browser.new_page(viewport=viewport)
    page.goto(server.url)
    page.wait_for_selector("#analyse", timeout=60_000)
    names = page.locator("#examples").inner_text()
    assert "A recording to search (6 s)" in names and "One micro-expression: surprise (0.46 s)" in names, names
    page.locator("#clip input[type=file]").set_input_files(str(clips["take"]))
    page.wait_for_selector("#clip video", timeout=30_000)
    page.click("#analyse")
    page.wait_for_function("(() => { const i = document.querySelector('#timeline img');"
                           " return i && i.complete && i.naturalWidth === 960; })()", timeout=120_000)
    page.wait_for_timeout(500)  # the page brings the verdict into view once the timeline is drawn
    summary = page.inner_text("#summary")
    assert summary.startswith("1 micro-expression spotted in 2.5 s") and "mode: spot" in summary, summary
    for selector in ("#synthetic-warning", "#summary", "#timeline"):
        _inside(page, selector, viewport)
    assert "Reliability:" in page.inner_text("#synthetic-warning")
    notes = page.inner_text("#notes")
    assert "left out: a blink" in notes, notes
    assert page.locator(".toast-body").count() == 0  # the notes are on the page, once; nothing covers the verdict
    assert "⚠" not in summary
    rows = page.locator("#intervals").inner_text()
    assert "100%" in rows or "99%" in rows, rows  # the probability column is there, in percent
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"demo-{viewport['width']}x{viewport['height']}.png"))
    page.close()


def test_page_plays_a_preview_of_an_avi_upload(browser, server, tmp_path):
    """A browser cannot play an AVI: the page shows an H.264 preview instead (no "Video not playable"), and the
    analysis still reads the upload itself."""
    from inference.video import read_clip

    clip = read_clip(examples()[-1])
    avi = tmp_path / "surprise.avi"
    write_video(avi, clip.frames, clip.fps)
    page = _open(browser, server)
    page.locator("#clip input[type=file]").set_input_files(str(avi))
    page.wait_for_function("(() => { const v = document.querySelector('#clip video');"
                           " return v && v.src.includes('.preview.mp4') && v.readyState >= 2; })()", timeout=60_000)
    page.click("#analyse")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('faces seen')", timeout=120_000)
    assert "Video not playable" not in page.inner_text("body")
    assert "a 0.46 s clip" in page.inner_text("#summary")  # the upload's own 46 frames at 100 fps
    assert true_label(examples()[-1]) in page.inner_text("#label").split("\n")[:3]
    page.close()


def test_preview_is_made_only_when_the_browser_cannot_play_the_upload(tmp_path):
    from demo.app import browser_plays, browser_preview
    from inference.video import read_clip

    assert browser_plays(examples()[0]) and browser_preview(examples()[0]) is None
    frames = read_clip(examples()[0]).frames
    write_video(tmp_path / "a.avi", frames, 100.0)
    preview = browser_preview(tmp_path / "a.avi", folder=tmp_path)
    assert preview.suffix == ".mp4" and browser_plays(preview) and read_clip(preview).n_frames == len(frames)


def test_page_shows_an_error_not_a_traceback(browser, server, clips):
    page = _open(browser, server)
    page.locator("#clip input[type=file]").set_input_files(str(clips["noface"]))
    page.wait_for_selector("#clip video", timeout=30_000)
    page.click("#analyse")
    toast = page.get_by_text("wall.mp4: no face", exact=False)
    toast.wait_for(state="visible", timeout=60_000)
    body = page.inner_text("body")
    assert "Traceback" not in body and "/gradio-temp/" not in body
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-error.png"), full_page=True)
    page.close()
