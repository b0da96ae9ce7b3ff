"""UF1 / UAR / WAR and the confusion matrix (scikit-learn underneath) against values worked out by hand."""

import numpy as np
import pytest

from training.metrics import confusion, scores


def test_scores_match_hand_computed_values():
    # true: 4 × class 0, 3 × class 1, 2 × class 2
    y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 1, 0, 2, 0]
    m = confusion(y_true, y_pred, 3)
    assert m.tolist() == [[2, 1, 1], [1, 2, 0], [1, 0, 1]]
    s = scores(y_true, y_pred, 3)
    # F1 = 2TP / (2TP + FP + FN): class 0: 4/(4+2+2) = 1/2; class 1: 4/(4+1+1) = 2/3; class 2: 2/(2+1+1) = 1/2
    assert s["per_class"]["f1"] == pytest.approx([1 / 2, 2 / 3, 1 / 2])
    # recall: 2/4, 2/3, 1/2
    assert s["per_class"]["recall"] == pytest.approx([1 / 2, 2 / 3, 1 / 2])
    assert s["per_class"]["support"] == [4, 3, 2]
    assert s["uf1"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert s["uar"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert s["war"] == pytest.approx(5 / 9)
    assert s["n"] == 9 and s["confusion"] == m.tolist()


def test_classes_absent_from_the_ground_truth_are_left_out_of_uf1_and_uar():
    # class 2 never occurs in the truth but is predicted once; class 3 never occurs at all
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    s = scores(y_true, y_pred, 4)
    # class 0: F1 = 2/(2+0+1) = 2/3, recall 1/2; class 1: F1 = 1, recall 1; classes 2, 3: reported 0
    assert s["per_class"]["f1"] == pytest.approx([2 / 3, 1.0, 0.0, 0.0])
    assert s["per_class"]["recall"] == pytest.approx([1 / 2, 1.0, 0.0, 0.0])
    assert s["per_class"]["support"] == [2, 2, 0, 0]
    assert s["uf1"] == pytest.approx((2 / 3 + 1) / 2)  # not divided by 4
    assert s["uar"] == pytest.approx((1 / 2 + 1) / 2)
    assert s["war"] == pytest.approx(3 / 4)
    assert s["confusion"][0] == [1, 0, 1, 0] and s["confusion"][3] == [0, 0, 0, 0]


def test_perfect_and_empty_predictions():
    s = scores([2, 0, 1, 2], [2, 0, 1, 2], 3)
    assert (s["uf1"], s["uar"], s["war"]) == (1.0, 1.0, 1.0)
    empty = scores([], [], 3)
    assert (empty["uf1"], empty["uar"], empty["war"], empty["n"]) == (0.0, 0.0, 0.0, 0)
    assert empty["confusion"] == np.zeros((3, 3), int).tolist()
    assert empty["per_class"] == {"f1": [0.0] * 3, "recall": [0.0] * 3, "support": [0] * 3}
