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
