import numpy as np
import pytest

from landmarks.metrics import (auc, box_normaliser, failure_rate, interocular_normaliser,
                               landmark_metrics, nme)


def square_face():
    """21 points filling a 40 x 10 tight box, outer eye corners 30 px apart."""
    points = np.zeros((21, 2))
    points[:, 0] = np.linspace(0, 40, 21)
    points[:, 1] = np.linspace(0, 10, 21)
    points[6] = [5, 5]
    points[9] = [35, 5]
    return points


def test_normalisers():
    face = square_face()[None]
    np.testing.assert_allclose(box_normaliser(face), [np.sqrt(40 * 10)])
    np.testing.assert_allclose(interocular_normaliser(face, (6, 9)), [30.0])


def test_nme_of_a_known_shift():
    truth = square_face()[None]
    pred = truth + np.array([3.0, 4.0])  # every point 5 px off
    np.testing.assert_allclose(nme(pred, truth, [20.0]), [0.25])
    metrics = landmark_metrics(pred, truth, (6, 9))
    assert metrics["nme_box"] == pytest.approx(100 * 5 / 20)
    assert metrics["nme_io"] == pytest.approx(100 * 5 / 30)
    assert metrics["fr_io@0.1"] == pytest.approx(100.0)  # 0.167 > 0.10
    assert metrics["auc_io@0.1"] == pytest.approx(0.0)


def test_failure_rate_and_auc():
    nmes = np.array([0.0, 0.05, 0.2, 0.02])
    assert failure_rate(nmes, 0.1) == pytest.approx(0.25)
    # CED: 1/4 at 0, steps to 2/4 at 0.02, 3/4 at 0.05; area/0.1 by hand:
    expected = (0.25 * 0.02 + 0.5 * 0.03 + 0.75 * 0.05) / 0.1
    assert auc(nmes, 0.1, steps=100_000) == pytest.approx(expected, abs=1e-4)
    assert auc(np.zeros(5)) == pytest.approx(1.0, abs=1e-3)


def test_300w_figures_failure_rate_and_auc_at_both_thresholds_and_nme_per_region():
    truth = np.zeros((2, 4, 2))
    truth[:, 1] = [10.0, 0.0]  # the interocular pair: points 0 and 1, 10 px apart
    truth[:, 2:] = [[0.0, 10.0], [10.0, 10.0]]
    pred = truth.copy()
    pred[0, 2:] += [0.0, 1.8]  # face 0: the lower points 1.8 px off: NME_io 0.09 over all points
    metrics = landmark_metrics(pred, truth, (0, 1), thresholds=(0.08, 0.10),
                               regions={"top": (0, 1), "bottom": (2, 3)})
    # face 0 fails at 0.08 and passes at 0.10
    assert metrics["fr_io@0.08"] == pytest.approx(50.0) and metrics["fr_io@0.1"] == pytest.approx(0.0)
    assert metrics["nme_io"] == pytest.approx(100 * (0.09 / 2))
    assert metrics["nme_io_top"] == pytest.approx(0.0)
    assert metrics["nme_io_bottom"] == pytest.approx(100 * (0.18 / 2))
    # the CED: half the faces at 0 from the start, the other half from 0.09 on
    assert metrics["auc_io@0.08"] == pytest.approx(0.5, abs=1e-3)
    assert metrics["auc_io@0.1"] == pytest.approx(0.5 + 0.5 * 0.01 / 0.1, abs=1e-3)
    worse = pred.copy()
    worse[1, 2:] += [0.0, 3.6]  # face 1: NME_io 0.18, a failure at both thresholds
    metrics = landmark_metrics(worse, truth, (0, 1))
    assert metrics["fr_io@0.08"] == pytest.approx(100.0) and metrics["fr_io@0.1"] == pytest.approx(50.0)
