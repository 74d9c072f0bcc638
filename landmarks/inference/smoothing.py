"""Temporal smoothing of landmarks: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A low-pass filter whose cut-off rises with speed: still points are smoothed hard (no jitter),
moving ones lightly (little lag). Works on whole arrays, one filter per tracked face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroSettings:
    min_cutoff: float = 1.0  # Hz: the cut-off at rest; lower = smoother still points
    beta: float = 1.0  # how fast the cut-off rises with speed (per face size a second); higher = less lag
    derivative_cutoff: float = 1.0  # Hz, for the speed estimate


def smoothing_factor(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays (e.g. [K, 2] points) over time. ``scale`` (e.g. the face's size in pixels)
    makes ``beta`` independent of the picture's resolution."""

    def __init__(self, settings: OneEuroSettings = OneEuroSettings()):
        self.settings = settings
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.time: float | None = None

    def __call__(self, value, time: float, scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self.value is None or self.time is None or time <= self.time:
            self.value, self.speed, self.time = value.copy(), np.zeros_like(value), time
            return value.copy()
        dt = time - self.time
        s = self.settings
        speed = (value - self.value) / dt
        a = smoothing_factor(s.derivative_cutoff, dt)
        self.speed = a * speed + (1 - a) * self.speed
        cutoff = s.min_cutoff + s.beta * np.abs(self.speed) / max(scale, 1e-9)
        alpha = 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))
        self.value = alpha * value + (1 - alpha) * self.value
        self.time = time
        return self.value.copy()
