"""Clips made from one picture, to try video paths and measure smoothing: a still face with
sensor noise, the same face panned across the frame, and the picture turning."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .video import VideoWriter


def still_frames(image: np.ndarray, count: int, noise: float = 3.0, seed: int = 0) -> list[np.ndarray]:
    """``image`` (RGB) repeated ``count`` times, each copy with Gaussian pixel noise of ``noise`` levels."""
    rng = np.random.default_rng(seed)
    return [np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def pan_frames(image: np.ndarray, count: int, travel: float = 0.5, noise: float = 3.0,
               seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``image`` moving right across a frame of its own size by ``travel`` of its width over ``count``
    frames, at constant speed -> (frames, x shift of each frame in pixels)."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    shifts = np.linspace(-travel / 2, travel / 2, count) * w
    frames = []
    for dx in shifts:
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(moved + rng.normal(0, noise, moved.shape), 0, 255).astype(np.uint8))
    return frames, shifts


def tilt_frames(image: np.ndarray, count: int, most: float = 45.0, noise: float = 3.0,
                seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``image`` turning about its centre from upright to ``most`` degrees (clockwise on screen)
    over ``count`` frames -> (frames, each frame's [2, 3] affine from picture to frame pixels)."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    frames, matrices = [], []
    for angle in np.linspace(0, most, count):
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)  # OpenCV turns counter-clockwise
        turned = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(turned + rng.normal(0, noise, turned.shape), 0, 255).astype(np.uint8))
        matrices.append(matrix)
    return frames, matrices


def write_clip(frames: list[np.ndarray], path: Path, fps: float = 25.0) -> Path:
    writer = VideoWriter(path, fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.close()
    return Path(path)
