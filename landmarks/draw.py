"""Drawing points, a scheme's lines and boxes on BGR pictures (in place)."""

from __future__ import annotations

import cv2
import numpy as np

GREEN, RED = (0, 200, 0), (0, 0, 255)


def point_colour(index: int, count: int) -> tuple[int, int, int]:
    """A distinct BGR colour for point ``index`` of ``count``."""
    hue = int(180 * index / max(count, 1))
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(v) for v in bgr)


def pixel(x: float, y: float) -> tuple[int, int]:
    """Continuous coordinates (pixel i covers [i, i + 1)) -> the pixel to draw at."""
    return int(round(x - 0.5)), int(round(y - 0.5))


def draw_points(canvas: np.ndarray, points, radius: int = 2, numbers: bool = False, lines=(),
                colour: tuple[int, int, int] | None = None) -> None:
    """Draw [K, 2] points (pixel coordinates) and, when given, a scheme's polylines; each point in
    a colour of its own, or all in ``colour``."""
    points = np.asarray(points, dtype=np.float64)
    thickness = max(1, radius // 2)
    placed = ~np.isnan(points).any(-1)  # a point left unlabelled is not drawn
    for line in lines:
        path = np.array([pixel(*points[i]) for i in line if placed[i]], np.int32)
        if len(path) > 1:
            cv2.polylines(canvas, [path], False, (255, 255, 255), thickness, cv2.LINE_AA)
    for index, (x, y) in enumerate(points):
        if not placed[index]:
            continue
        shade = colour or point_colour(index, len(points))
        cv2.circle(canvas, pixel(x, y), radius, shade, -1, cv2.LINE_AA)
        if numbers:
            cx, cy = pixel(x, y)
            cv2.putText(canvas, str(index + 1), (cx + 2, cy - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.28, shade, 1,
                        cv2.LINE_AA)


def draw_box(canvas: np.ndarray, box, colour, thickness: int = 1, label: str = "") -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
    if label:
        scale = max(0.35, 0.2 * thickness + 0.25)
        cv2.putText(canvas, label, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def marker_radius(canvas: np.ndarray) -> int:
    """A point radius that shows on a picture of this size."""
    return max(2, int(round(max(canvas.shape[:2]) / 300)))
