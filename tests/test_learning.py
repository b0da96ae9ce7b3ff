"""The recipe learns: the tiny config's SBML-OLR LOSO (24 epochs, 6 folds) on the synthetic asymmetric SMIC-HS.

A test of its own: the suite's longest (about 2 min on 2 cores), and the one that checks the recipe learns.
"""

from tests.test_loso import _check_outputs


def test_sbml_olr_learns_the_asymmetric_set(tiny_run):
    out, res = tiny_run
    _check_outputs(out)
    assert res["uar"] > 0.55 and res["uf1"] > 0.5, res  # chance: 1/3
