"""The demo with a model trained on real data: a fold package (STSTNet's per-fold files, synthetic stand-ins in the
authors' layout, converted with export.convert) gets the card's provenance line in place of the synthetic-weights
warning — what it was trained on, how many subjects, its honest LOSO figure and protocol — shows the flow image the
model saw beside the verdict, and takes the views choice as O/L/R test-time views."""

from __future__ import annotations

import numpy as np
import pytest

from demo.app import EXAMPLES, Analyser, card_facts, motion_sheet, provenance_markdown, reliability_markdown
from export.convert import convert_ststnet
from inference.runtime import Predictor
from tests.test_demo import Server, browser  # noqa: F401 — the module fixture `browser` (Debian's Chromium)
from tests.test_foldpackage import SUBJECTS, authors_file

CLIP = EXAMPLES / "surprise.mp4"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights") / "STSTNet_Weights"
    folder.mkdir()
    for k, name in enumerate(SUBJECTS):
        authors_file(folder / f"{name}.pth", k)
    out = tmp_path_factory.mktemp("pkg") / "ststnet-folds"
    convert_ststnet(folder, out, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def analyser(package) -> Analyser:
    return Analyser(Predictor(package, device="cpu"))


def test_a_fold_package_gets_its_provenance_line_not_the_synthetic_warning(analyser):
    pkg = analyser.predictor.package
    assert not pkg.synthetic and pkg.loso is None  # a converted package: its figure is the authors'
    line = provenance_markdown(pkg)
    assert line.startswith("**Trained on** the MEGC2019 composite flow-image set; folds: 2 SMIC-HS, 2 CASME II, "
                           "2 SAMM; 6 subjects."), line
    assert "the mean of the authors' 6 fold models (https://github.com/christy1206/STSTNet), converted" in line
    assert "**Honest figure:** UF1 0.7209 · UAR 0.7250 (leave-one-subject-out on 6 subjects, composite protocol; " \
           "the authors' log" in line
    shown = reliability_markdown(analyser.predictor)
    assert line in shown and "synthetic" not in shown and "72% balanced over the classes" in shown
    card = card_facts(analyser.predictor, "ststnet-folds")
    assert "UF1 0.7209 · UAR 0.7250 (6 subjects, composite protocol" in card and "not evaluated" not in card
    assert "| folds | 6 LOSO fold models" in card and "synthetic faces only" not in card


def test_a_fold_package_shows_the_flow_image_it_saw_and_takes_test_time_views(analyser):
    o = analyser.analyse(str(CLIP), "O", mode="whole")
    olr = analyser.analyse(str(CLIP), "OLR", mode="whole")
    fsb_fixed = analyser.analyse(str(CLIP), "LR", mode="whole")
    for result, views in ((o, "O"), (olr, "OLR"), (fsb_fixed, "LR")):
        p = result.prediction
        assert p is not None and p.views == views and p.motion is not None
        assert result.motion.dtype == np.uint8 and result.motion.ndim == 3
        np.testing.assert_array_equal(result.motion, motion_sheet(p.motion, "flow_image_bgr",
                                                                  analyser.predictor.package.motion))
    # the views change the answer as the runtime's test-time views do: the same numbers as the predictor's own
    prepared = analyser.predictor.prepare(str(CLIP))
    x, _ = analyser.predictor.package.build_input(prepared.frames)
    probs, _, folds = analyser.predictor.run_folds(x[None], "OLR")
    assert folds.shape[:2] == (6, 1)
    np.testing.assert_allclose(olr.prediction.probs, probs[0], atol=1e-5)
    assert not np.allclose(o.prediction.probs, olr.prediction.probs)


def test_the_page_shows_the_provenance_line_and_the_flow_image_beside_the_verdict(browser, package,  # noqa: F811
                                                                                   tmp_path):
    server = Server(tmp_path, "--model", str(package)).wait()
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(server.url)
        page.wait_for_selector("#analyse", timeout=60_000)
        top = page.inner_text("#synthetic-warning")
        assert "Trained on" in top and "6 subjects" in top and "UF1 0.7209" in top, top
        assert "synthetic faces only" not in top and "synthetic faces only" not in page.inner_text("#card")
        assert page.locator("#views input[type=radio]").first.is_enabled()  # test-time views may be chosen
        page.locator("#views").get_by_text("OLR", exact=True).click()
        page.locator("#mode").get_by_text("whole", exact=False).first.click()
        page.locator("#clip input[type=file]").set_input_files(str(CLIP))
        page.wait_for_selector("#clip video", timeout=30_000)
        page.click("#analyse")
        page.wait_for_function("document.querySelector('#summary').innerText.includes('faces seen')",
                               timeout=120_000)
        assert "from views OLR" in page.inner_text("#summary")
        page.wait_for_function("(() => { const i = document.querySelector('#motion img');"
                               " return i && i.complete && i.naturalWidth > 0; })()", timeout=30_000)
        verdict, flow = page.locator("#label").bounding_box(), page.locator("#motion").bounding_box()
        assert flow["x"] >= verdict["x"] + verdict["width"] - 1  # to the right of the verdict, on the same band
        assert flow["y"] < verdict["y"] + verdict["height"] and verdict["y"] < flow["y"] + flow["height"]
        assert flow["y"] < 768  # on the first screen of a laptop
        page.close()
    finally:
        server.stop()
