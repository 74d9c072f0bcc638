"""Video files and cameras in, annotated video out, and a window where the OpenCV build has one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import DataError, UsageError
from ..files import PartFile

# The default OpenCV wheel here is the headless one; a GUI build shows a window instead.
WINDOW_HINT = ("no window: this OpenCV has no GUI (the headless build); for one, "
               "pip uninstall -y opencv-python-headless && pip install 'opencv-python<5'")


@dataclass
class VideoSource:
    """Frames from a video file or a camera: RGB arrays with their time in seconds."""

    capture: cv2.VideoCapture
    name: str
    fps: float
    size: tuple[int, int]  # width, height
    frame_count: int  # 0 where unknown (cameras)

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        index = 0
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                return
            yield index, index / self.fps, np.ascontiguousarray(bgr[:, :, ::-1])
            index += 1

    def close(self) -> None:
        self.capture.release()


def open_video(path: Path) -> VideoSource:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video not found")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise DataError(f"{path}: cannot read video frames (not a video OpenCV can decode, or empty)")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (first.shape[1], first.shape[0])
    return VideoSource(capture, str(path), fps if fps > 0 else 25.0, size, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))


def open_camera(index: int) -> VideoSource:
    capture = cv2.VideoCapture(index)
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise DataError(f"camera {index}: cannot open it (no such camera, or it is busy)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    return VideoSource(capture, f"camera {index}", fps if fps > 0 else 30.0, (first.shape[1], first.shape[0]), 0)


class VideoWriter:
    """An annotated video (BGR frames), MPEG-4, at the source's frame rate. It is written under a
    temporary name and gets ``path`` on ``close`` (``complete=False``: it is removed instead)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = PartFile(self.path)
        self.writer = cv2.VideoWriter(str(self.part.part), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            self.part.discard()
            raise UsageError(f"{self.path}: cannot write a video here (is the suffix .mp4 or .avi?)")

    def write(self, bgr: np.ndarray) -> None:
        self.writer.write(bgr)

    def close(self, complete: bool = True) -> None:
        self.writer.release()
        if complete:
            self.part.finish()
        else:
            self.part.discard()


def window_available() -> bool:
    """Whether this OpenCV build can show a window on this machine."""
    if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("landmarks", cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True
