"""Landmark schemes as data: the built-in files, their checks, conversions and face boxes."""

import numpy as np
import pytest

from landmarks.data.scheme import builtin_schemes, load_scheme, scheme_for_count, scheme_from_dict
from landmarks.errors import DataError, UsageError

# The course-data README's permutation and the LFPW README's, as published.
COURSE_FLIP = [5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 12, 11, 10, 13, 14, 15, 17, 16, 18, 20, 19]
IBUG_FLIP = [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
             27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51,
             50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]


def test_builtin_schemes_match_the_published_flip_tables():
    assert set(builtin_schemes()) >= {"course21", "ibug68", "wflw98", "five"}
    assert list(load_scheme("course21").flip_permutation) == COURSE_FLIP
    assert list(load_scheme("ibug68").flip_permutation) == IBUG_FLIP
    assert load_scheme("course21").interocular == (6, 9) and load_scheme("ibug68").interocular == (36, 45)
    for name in builtin_schemes():
        flip = load_scheme(name).flip_permutation
        assert sorted(flip) == list(range(len(flip))) and [flip[i] for i in flip] == list(range(len(flip))), name
    assert scheme_for_count(68).name == "ibug68" and scheme_for_count(5).name == "five"


def test_points_derive_from_other_schemes():
    course, ibug, five = load_scheme("course21"), load_scheme("ibug68"), load_scheme("five")
    points = np.arange(42, dtype=float).reshape(21, 2)
    np.testing.assert_allclose(five.convert(points, course), points[[16, 17, 18, 19, 20]])
    many = np.random.default_rng(0).normal(size=(3, 68, 2))
    derived = course.convert(many, ibug)
    assert derived.shape == (3, 21, 2)
    np.testing.assert_allclose(derived[:, 6], many[:, 36])  # left eye outer corner
    np.testing.assert_allclose(derived[:, 16], many[:, 36:42].mean(1))  # left eye centre: mean of the eye
    np.testing.assert_allclose(derived[:, 14], many[:, [62, 66]].mean(1))  # mouth centre
    with pytest.raises(UsageError, match="cannot be derived from 'five'"):
        course.convert(points[:5], five)


def test_face_box_from_points_uses_the_scheme_framing():
    scheme = scheme_from_dict({"name": "t", "points": ["a", "b"], "flip_pairs": [[0, 1]], "interocular": [0, 1],
                               "face_box": [-0.5, 0.0, 1.5, 2.0]})
    box = scheme.face_boxes(np.array([[10.0, 20.0], [30.0, 40.0]]))  # tight box 20 x 20 at (10, 20)
    np.testing.assert_allclose(box, [0.0, 20.0, 40.0, 60.0])
    np.testing.assert_allclose(load_scheme("ibug68").face_boxes(np.array([[1.0, 2.0], [5.0, 9.0]])), [1, 2, 5, 9])


@pytest.mark.parametrize("change, message", [
    ({"flip_pairs": [[0, 7]]}, "flip_pairs names point 7, outside 0..2"),
    ({"flip_pairs": [[0, 1], [1, 2]]}, "point 1 is in more than one flip pair"),
    ({"interocular": [1, 1]}, "interocular takes two different points"),
    ({"derive": {"other": [[0], [1]]}}, "derive.other has 2 rows, the scheme has 3 points"),
    ({"face_box": [0, 0, -1, 1]}, "face_box takes x1, y1, x2, y2"),
    ({"colour": "red"}, "unknown key colour"),
])
def test_bad_scheme_files_are_refused_with_the_reason(tmp_path, change, message):
    data = {"name": "mine", "points": ["a", "b", "c"], "flip_pairs": [[0, 2]], "interocular": [0, 2], **change}
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            continue
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {v!r}" for k, v in value.items()]
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as error:
        load_scheme(path)
    assert str(path) in str(error.value)


def test_unknown_scheme_names_the_built_in_ones():
    with pytest.raises(UsageError, match="unknown scheme 'ibug70'; built in: course21, five, ibug68, wflw98"):
        load_scheme("ibug70")
