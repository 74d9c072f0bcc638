import numpy as np
import pytest

from landmarks.data.scheme import load_scheme
from landmarks.geometry import (box_centre, clamp_box, contains, crop_box, expand_box, flip_points,
                                from_crop, iou, to_crop)


def test_expand_box_grows_a_quarter_of_width_and_height_each_side():
    np.testing.assert_allclose(expand_box([100, 200, 140, 280]), [90, 180, 150, 300])


def test_clamp_box_stops_at_the_image_edges():
    np.testing.assert_allclose(clamp_box([-5, -1, 130, 90], 120, 100), [0, 0, 120, 90])


def test_crop_box_expands_clamps_and_rounds_outward():
    # 40x40 box at the left edge: expands by 10, x1 clamps to 0.
    np.testing.assert_allclose(crop_box([5, 30, 45, 70], 200, 75), [0, 20, 55, 75])
    np.testing.assert_allclose(crop_box([10.2, 10.2, 20.6, 20.6], 100, 100), [7, 7, 24, 24])


def test_landmarks_relative_to_crop_then_rescaled_to_112_and_back():
    region = np.array([10.0, 20.0, 66.0, 132.0])  # 56 wide, 112 high: not square
    points = np.array([[10.0, 20.0], [66.0, 132.0], [38.0, 76.0]])
    in_crop = to_crop(points, region, (112, 112))
    np.testing.assert_allclose(in_crop, [[0, 0], [112, 112], [56, 56]])
    np.testing.assert_allclose(from_crop(in_crop, region, (112, 112)), points)


def test_iou_of_known_overlaps():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou([0, 0, 10, 10], boxes), [1.0, 50 / 150, 0.0])


def test_flip_points_mirrors_and_swaps():
    flip = load_scheme("course21").flip_permutation
    points = np.arange(42, dtype=float).reshape(21, 2)
    flipped = flip_points(points, 100, flip)
    np.testing.assert_allclose(flipped[6], [100 - points[9, 0], points[9, 1]])  # point 7 <- 10
    np.testing.assert_allclose(flip_points(flipped, 100, flip), points)
    with pytest.raises(ValueError):
        flip_points(points[:20], 100, flip)


def test_haar_boxes_are_mapped_to_annotation_framing():
    from landmarks.inference.faces import HAAR_TO_ANNOTATION, haar_to_face_box
    mapped = haar_to_face_box([[100, 200, 200, 300]])
    np.testing.assert_allclose(mapped[0], 100 * np.array(HAAR_TO_ANNOTATION) + [100, 200, 100, 200])
    assert haar_to_face_box(np.zeros((0, 4))).shape == (0, 4)


def test_covered_share_is_the_part_of_a_box_inside_each_other_box():
    from landmarks.geometry import covered_share
    shares = covered_share([0, 0, 10, 10], [[0, 0, 10, 10], [5, 0, 20, 10], [-5, -5, 5, 5], [20, 20, 30, 30]])
    assert shares.tolist() == [1.0, 0.5, 0.25, 0.0]


def test_box_centres_and_which_points_a_box_contains():
    boxes = np.array([[0.0, 0.0, 10.0, 20.0], [4.0, 6.0, 8.0, 8.0]])
    assert np.allclose(box_centre(boxes), [[5.0, 10.0], [6.0, 7.0]])
    assert np.allclose(box_centre(boxes[1]), [6.0, 7.0])
    points = np.array([[0.0, 0.0], [10.0, 20.0], [5.0, 21.0], [-0.1, 5.0]])
    assert contains(boxes[0], points).tolist() == [True, True, False, False]  # edges count
    assert contains(boxes[1], [6.0, 7.0]).tolist() == [True]


def test_affine_points_move_points_as_opencv_moves_them():
    import cv2
    from landmarks.geometry import affine_points
    matrix = cv2.getRotationMatrix2D((50.0, 40.0), 30, 1.5)
    points = np.array([[[0.0, 0.0], [50.0, 40.0], [100.0, 10.0]]])
    np.testing.assert_allclose(affine_points(points, matrix), cv2.transform(points, matrix), atol=1e-9)
    np.testing.assert_allclose(affine_points([50.0, 40.0], matrix), [50.0, 40.0], atol=1e-9)  # the centre stays


def test_a_turned_crop_matrix_maps_the_expanded_box_onto_the_crop_and_inverts():
    from landmarks.geometry import affine_points, invert_affine, turn_points, turned_crop_matrix
    box = np.array([100.0, 50.0, 180.0, 150.0])  # 80 x 100, centre (140, 100)
    upright = turned_crop_matrix(box, 0.0, 112, 0.25)  # the expanded box: 120 x 150 from (80, 25)
    np.testing.assert_allclose(affine_points([[80, 25], [200, 175], [140, 100]], upright),
                               [[0, 0], [112, 112], [56, 56]], atol=1e-9)
    turned = turned_crop_matrix(box, 30.0, 112, 0.25)
    corners = turn_points([[80, 25], [200, 175]], 30.0, [140, 100])  # the expanded box turned about the centre
    np.testing.assert_allclose(affine_points(corners, turned), [[0, 0], [112, 112]], atol=1e-9)
    back = affine_points(affine_points([[3.0, 4.0], [90.5, -7.0]], turned), invert_affine(turned))
    np.testing.assert_allclose(back, [[3.0, 4.0], [90.5, -7.0]], atol=1e-9)
    # Image axes: a positive turn moves a point right of the centre downwards (clockwise on screen).
    assert turn_points([[10.0, 0.0]], 90.0, [0.0, 0.0])[0] == pytest.approx([0.0, 10.0])


def test_a_scheme_reads_the_tilt_of_a_head_from_its_eye_line():
    scheme = load_scheme("course21")
    points = np.array(load_scheme("course21").mean_face_3d)[:, :2] * 100 + 200
    assert scheme.tilt(points) == pytest.approx(0.0, abs=1.0)
    from landmarks.geometry import turn_points
    assert scheme.tilt(turn_points(points, 35.0, [200, 200])) == pytest.approx(35.0, abs=1.0)
    assert scheme.tilt(turn_points(points, -50.0, [200, 200])) == pytest.approx(-50.0, abs=1.0)
