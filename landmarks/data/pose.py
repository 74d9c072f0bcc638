"""Head pose from landmarks: a 3D mean face fitted to the points with cv2.solvePnP.

Angles in degrees, the camera looking at the picture:
- yaw > 0: the face turns toward the picture's right (the person's left);
- pitch > 0: the face turns up;
- roll > 0: the head tilts clockwise in the picture (its right-hand eye lower).
A mirrored picture gives the same pitch and the opposite yaw and roll.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError
from .images import image_size
from .scheme import Scheme, load_scheme


def pose_model(scheme: Scheme) -> tuple[np.ndarray, Scheme]:
    """The 3D points to fit for ``scheme`` and the scheme they belong to: its own mean face, or
    the five points (from the course scheme's mean face) that it derives."""
    if scheme.mean_face_3d:
        return np.array(scheme.mean_face_3d, dtype=np.float64), scheme
    five, course = load_scheme("five"), load_scheme("course21")
    if scheme.name not in five.derive and scheme.name != "five":
        raise UsageError(f"scheme {scheme.name} has no 3D mean face and no derivation to five points: no head pose")
    return five.convert(np.array(course.mean_face_3d), course), five


def head_pose(points, scheme: Scheme, image_size: tuple[int, int]) -> tuple[float, float, float]:
    """[K, 2] points of ``scheme`` in a picture of ``image_size`` (width, height) -> (yaw, pitch, roll)."""
    model, model_scheme = pose_model(scheme)
    image_points = model_scheme.convert(np.asarray(points, dtype=np.float64), scheme)
    width, height = image_size
    focal = float(max(width, height))  # about a 53-degree field of view: an ordinary camera
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(model, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(model, image_points, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan"), float("nan"), float("nan")
    rotation, _ = cv2.Rodrigues(rvec)
    return angles(rotation)


def face_yaws(points, scheme: Scheme, image_sizes) -> np.ndarray:
    """[M, K, 2] faces' points, each in a picture of ``image_sizes`` ([M, 2] or one (width,
    height)) -> [M] the size of each head's yaw in degrees, either way; NaN where a point is
    unlabelled, and all NaN for a scheme that gives no pose."""
    points = np.asarray(points, dtype=np.float64)
    sizes = np.broadcast_to(np.asarray(image_sizes, dtype=np.float64), (len(points), 2))
    yaws = np.full(len(points), np.nan)
    for i, face in enumerate(points):
        if np.isfinite(face).all():
            try:
                yaws[i] = abs(head_pose(face, scheme, (sizes[i, 0], sizes[i, 1]))[0])
            except UsageError:  # no 3D face and no five points to fit
                return yaws
    return yaws


def entry_yaws(entries, scheme: Scheme, sizes: dict | None = None) -> np.ndarray:
    """Face list entries (their points relative to the crop box) -> [N] the size of each head's
    yaw as ``face_yaws`` gives it in its picture; ``sizes``: picture path -> (width, height),
    else each picture's size is read once."""
    if not entries:
        return np.zeros(0)
    sizes = dict(sizes or {})
    for image in {Path(e.image) for e in entries} - set(sizes):
        sizes[image] = image_size(image)
    points = np.stack([e.points + e.box[:2] for e in entries])
    return face_yaws(points, scheme, np.array([sizes[Path(e.image)] for e in entries]))


def angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """A face's rotation (model to camera) -> (yaw, pitch, roll) in degrees, as the module says."""
    forward = rotation @ np.array([0.0, 0.0, -1.0])  # where the face looks: toward the camera when frontal
    right = rotation @ np.array([1.0, 0.0, 0.0])  # from its left eye to its right one
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(right[1], right[0]))
    return yaw, pitch, roll
