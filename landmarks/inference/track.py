"""Faces over the frames of a video: each face is followed from its own landmarks and keeps an id.

In frame t + 1 a face's crop comes from the box its points in frame t give (as its scheme frames
faces), and the face branch checks that it is still a face. The face finder runs only when a
face is lost, when there is none, and every ``detect_every`` frames for newcomers. Points are
smoothed per face with the One Euro filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..config import setting
from ..geometry import box_scale, crop_box, iou
from .landmarker import Face, Landmarker, as_image
from .smoothing import OneEuroFilter, OneEuroSettings


@dataclass(frozen=True)
class TrackSettings:
    """How faces are followed over frames (``--phase predict --video`` takes a flag per field)."""

    detect_every: int = setting(10, "run the face finder every this many frames for new faces; it also runs when a "
                                "face is lost")
    smooth: bool = setting(True, "smooth each face's points over time with the One Euro filter")
    # Chosen with scripts/bench_video.py on still and panned clips (docs/video.md): a low cut-off at
    # rest holds a still face, a steep rise with speed keeps a moving one under a frame behind.
    min_cutoff: float = setting(0.3, "One Euro filter cut-off at rest, Hz: lower is steadier")
    beta: float = setting(30.0, "One Euro filter speed coefficient (per face size a second): higher lags less "
                                "on fast moves")

    @property
    def smoothing(self) -> OneEuroSettings | None:
        return OneEuroSettings(self.min_cutoff, self.beta) if self.smooth else None


@dataclass
class Track:
    id: int
    points: np.ndarray  # the latest points as measured (not smoothed): the next crop comes from them
    face_prob: float | None
    filter: OneEuroFilter | None


class Tracker:
    def __init__(self, marker: Landmarker, settings: TrackSettings = TrackSettings(), new_face_iou: float = 0.3):
        self.marker = marker
        self.detect_every = max(1, settings.detect_every)
        self.smoothing = settings.smoothing
        self.new_face_iou = new_face_iou
        self.tracks: list[Track] = []
        self.frames = 0
        self.next_id = 1
        self.detections = 0  # how often the face finder ran

    def update(self, frame, time: float) -> list[Face]:
        """Faces in ``frame`` (RGB array or path) at ``time`` seconds, with ids and smoothed points."""
        rgb = as_image(frame)
        scheme = self.marker.scheme
        lost = False
        if self.tracks:
            followed = self.marker._look_from_points(self.marker._pixels(rgb), [t.points for t in self.tracks])
            kept = []
            for track, face in zip(self.tracks, followed):
                if face.is_face:
                    track.points, track.face_prob = face.points, face.face_prob
                    kept.append(track)
                else:
                    lost = True
            self.tracks = kept
        if lost or not self.tracks or self.frames % self.detect_every == 0:
            self.add_new_faces(rgb)
        self.frames += 1
        faces = []
        height, width = rgb.shape[:2]
        for track in self.tracks:
            points = track.points
            if track.filter is not None:
                points = track.filter(track.points, time, scale=float(box_scale(scheme.face_boxes(track.points))))
            face_box = scheme.face_boxes(points)
            faces.append(Face(face_box, crop_box(face_box, width, height, self.marker.config.crop_expand), points,
                              track.face_prob, id=track.id))
        return faces

    def add_new_faces(self, rgb: np.ndarray) -> None:
        self.detections += 1
        found = [f for f in self.marker.detect(rgb) if f.is_face]
        tracked = [self.marker.scheme.face_boxes(t.points) for t in self.tracks]
        for face in found:
            if tracked and iou(face.box, np.array(tracked)).max() >= self.new_face_iou:
                continue  # already followed
            self.tracks.append(Track(self.next_id, face.points, face.face_prob,
                                     OneEuroFilter(self.smoothing) if self.smoothing else None))
            tracked.append(face.box)
            self.next_id += 1

    def run(self, frames: Iterable[tuple[float, np.ndarray]]) -> Iterator[list[Face]]:
        """Faces of each (time, frame) in turn."""
        for time, frame in frames:
            yield self.update(frame, time)
