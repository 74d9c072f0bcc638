"""Pictures of a crop test: where a landmark model fails (its worst faces, its mean error per
point: ``--phase test --failure-report DIR``) and its cumulative error curve (``--ced-plot``)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from ..data.images import crop_resize, load_image
from ..data.labels import ListEntry
from ..data.scheme import Scheme
from ..draw import GREEN, RED, draw_points
from ..files import Outputs
from ..metrics import box_normaliser, cumulative_error_curve, nme

TILE = 192


def worst_faces_picture(entries: list[ListEntry], predicted: np.ndarray, errors: np.ndarray, count: int,
                        columns: int = 4) -> np.ndarray:
    """BGR sheet of the ``count`` faces with the largest ``errors``: truth green, prediction red.

    predicted: [N, K, 2] image pixels; errors: [N] NME of each face."""
    order = np.argsort(-errors)[:count]
    rows = (len(order) + columns - 1) // columns
    sheet = np.full((rows * TILE, columns * TILE, 3), 255, np.uint8)
    for slot, i in enumerate(order):
        entry = entries[i]
        tile = np.ascontiguousarray(crop_resize(load_image(entry.image, 3), entry.box, TILE, TILE)[:, :, ::-1])
        scale = TILE / (entry.box[2:] - entry.box[:2])
        draw_points(tile, entry.points * scale, colour=GREEN)
        draw_points(tile, (predicted[i] - entry.box[:2]) * scale, colour=RED)
        for colour, width in (((255, 255, 255), 2), ((0, 0, 0), 1)):
            cv2.putText(tile, f"{100 * errors[i]:.1f}%", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, width)
        r, c = divmod(slot, columns)
        sheet[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = tile
    return sheet


def point_error_chart(per_point: np.ndarray, names, title: str) -> bytes:
    """PNG bar chart of each point's mean error (% of face size)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(names)), 4.2), dpi=100)
    ax.bar(range(len(names)), per_point, color="#4c72b0")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{i + 1} {n}" for i, n in enumerate(names)], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("mean error, % of face size")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return png.getvalue()


def failure_report(entries: list[ListEntry], predicted: np.ndarray, scheme: Scheme, folder: Path,
                   outputs: Outputs, title: str, worst: int = 16) -> dict:
    """``folder``/failures.png and point_errors.png for faces ``entries`` and their predicted
    points [N, K, 2] in image pixels -> {per_point: mean error per point (%), worst: 3 worst points}."""
    truths = np.array([e.points + e.box[:2] for e in entries])
    norm = box_normaliser(truths)
    errors = nme(predicted, truths, norm)
    _, sheet = cv2.imencode(".png", worst_faces_picture(entries, predicted, errors, worst))
    outputs.write_bytes("--failure-report", folder / "failures.png", sheet.tobytes())
    per_point = 100 * np.nanmean(np.linalg.norm(predicted - truths, axis=-1) / norm[:, None], axis=0)  # labelled only
    chart = point_error_chart(per_point, scheme.points, f"{title} ({len(entries)} faces): NME_box "
                              f"{100 * errors.mean():.2f} %")
    outputs.write_bytes("--failure-report", folder / "point_errors.png", chart)
    return {"per_point": per_point, "worst": [int(i) for i in np.argsort(-per_point)[:3]]}


def ced_chart(nmes: np.ndarray, threshold: float, title: str) -> bytes:
    """PNG of the cumulative error curve: the share of faces whose NME_io [N] (a fraction) is at
    most x, for x from 0 to ``threshold``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs, ys = cumulative_error_curve(nmes, threshold, steps=400)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=100)
    ax.plot(100 * xs, ys, color="#4c72b0")
    ax.set_xlabel("NME_io (%)")
    ax.set_ylabel("share of faces")
    ax.set_xlim(0, 100 * threshold)
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return png.getvalue()
