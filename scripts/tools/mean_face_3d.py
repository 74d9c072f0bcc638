"""Recover a 3D mean face of a scheme's points from 2D annotations of many faces in many poses.

Under a scaled orthographic camera, the centred 2D points of N faces stacked as a 2N x K matrix
have rank 3 (Tomasi-Kanade factorisation): W = M S, with M the per-face camera rows and S the
3 x K shape. The factors are fixed up to an invertible 3 x 3 Q; the metric upgrade finds
Q Q^T from the constraint that each face's two camera rows are orthogonal and of equal length.
Faces differ in shape and expression, so S is their mean rigid structure. The sign of depth
is set so that the nose tip is nearer the camera than the eyes (z grows away from it).

    python scripts/tools/mean_face_3d.py --data-dir ../shared/course-data
prints the points to paste into the scheme file as ``mean_face_3d`` (units: eye-corner
distance = 1; x to the picture's right, y down, z away from the camera).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from landmarks.data.formats import read_source
from landmarks.data.labels import Report
from landmarks.data.scheme import load_scheme


def factorise(points: np.ndarray) -> np.ndarray:
    """[N, K, 2] points -> [K, 3] rigid shape (up to rotation and scale)."""
    centred = points - points.mean(1, keepdims=True)
    scale = np.sqrt((centred ** 2).sum((1, 2)) / points.shape[1])
    centred = centred / scale[:, None, None]  # every face weighs the same
    w = np.concatenate([centred[:, :, 0], centred[:, :, 1]], 0)  # [2N, K]: all x rows, then all y rows
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    motion = u[:, :3] * np.sqrt(s[:3])
    shape = np.sqrt(s[:3])[:, None] * vt[:3]
    n = len(points)
    rows_x, rows_y = motion[:n], motion[n:]

    def coefficients(a, b):
        # a^T L b for symmetric L, as a row over L's 6 unknowns.
        return np.stack([a[:, 0] * b[:, 0], a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0], a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0],
                         a[:, 1] * b[:, 1], a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1], a[:, 2] * b[:, 2]], 1)

    # Equal lengths (x.x - y.y = 0), orthogonal rows (x.y = 0), and one scale (mean x.x = 1).
    a = np.concatenate([coefficients(rows_x, rows_x) - coefficients(rows_y, rows_y), coefficients(rows_x, rows_y),
                        coefficients(rows_x, rows_x).mean(0, keepdims=True)])
    b = np.concatenate([np.zeros(2 * n), [1.0]])
    l6 = np.linalg.lstsq(a, b, rcond=None)[0]
    big_l = np.array([[l6[0], l6[1], l6[2]], [l6[1], l6[3], l6[4]], [l6[2], l6[4], l6[5]]])
    values, vectors = np.linalg.eigh(big_l)
    q = vectors * np.sqrt(np.clip(values, 1e-9, None))
    return (np.linalg.inv(q) @ shape).T


def to_face_frame(shape: np.ndarray, left_eye: int, right_eye: int, nose: int, mouth: list[int]) -> np.ndarray:
    """Rotate the shape into the face's frame: x from the left eye to the right one, y from the eyes
    down to the mouth, z away from the camera (the nose tip in front); scale: eye distance 1."""
    origin = (shape[left_eye] + shape[right_eye]) / 2
    x = shape[right_eye] - shape[left_eye]
    x /= np.linalg.norm(x)
    down = shape[mouth].mean(0) - origin
    y = down - x * (down @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    frame = (shape - origin) @ np.stack([x, y, z], 1)
    if frame[nose, 2] > 0:  # a mirror solution: the nose would point away from the camera
        frame[:, 2] *= -1
    return frame / np.linalg.norm(frame[right_eye] - frame[left_eye])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/course-data"), help="(default: %(default)s)")
    parser.add_argument("--scheme", default="course21", help="(default: %(default)s)")
    args = parser.parse_args(argv)
    scheme = load_scheme(args.scheme)
    source = read_source("course", args.data_dir, Report())
    points = np.array([scheme.convert(a.points, source.scheme) for a in source.annotations])
    # The nose tip and mouth corners, as the five-point scheme takes them from this one.
    five = load_scheme("five").derive[scheme.name]
    shape = to_face_frame(factorise(points), *scheme.interocular, five[2][0], [five[3][0], five[4][0]])
    # How well one rigid shape explains the faces: residual of the rank-3 fit.
    centred = points - points.mean(1, keepdims=True)
    w = np.concatenate([centred[:, :, 0], centred[:, :, 1]], 0)
    s = np.linalg.svd(w / np.linalg.norm(w), compute_uv=False)
    print(f"{len(points)} faces; share of the 2D variation a rigid 3D shape explains: "
          f"{(s[:3] ** 2).sum() / (s ** 2).sum():.3f}")
    print("mean_face_3d = [")
    for name, (x, y, z) in zip(scheme.points, shape):
        print(f"    [{x:.3f}, {y:.3f}, {z:.3f}],  # {name}")
    print("]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
