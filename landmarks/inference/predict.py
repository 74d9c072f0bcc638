"""What --phase predict writes: pictures with faces drawn, JSON and text, picture inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..data.images import IMAGE_SUFFIXES
from ..draw import GREEN, RED, draw_box, draw_points, marker_radius
from ..errors import DataError, UsageError
from .landmarker import Face


def parse_box(text: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise UsageError(f"--box takes x1,y1,x2,y2 with x2 > x1 and y2 > y1, got {text!r}")
    return np.array(values)


def image_inputs(path: Path) -> list[Path]:
    """The images to predict on: one file, or every image file in a folder (others named, on
    stderr, and skipped)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            print(f"note: skipping {len(others)} non-image file(s) in {path}: {', '.join(others[:5])}"
                  + (" ..." if len(others) > 5 else ""), file=sys.stderr)
        if not images:
            raise DataError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    if not path.exists():
        raise DataError(f"{path}: image not found")
    return [path]


def draw_faces(rgb: np.ndarray, faces: list[Face], lines=()) -> np.ndarray:
    """A BGR copy of the picture with each face's box (green: face, red: rejected) and points."""
    canvas = np.ascontiguousarray(rgb[:, :, ::-1])
    radius = marker_radius(canvas)
    for face in faces:
        colour = GREEN if face.is_face else RED
        label = ""
        if face.id is not None:
            label = f"#{face.id} "
        if face.face_prob is not None:
            label += f"face {face.face_prob:.2f}"
        draw_box(canvas, face.box, colour, max(1, radius // 2), label.strip())
        if face.is_face:
            draw_points(canvas, face.points, radius=radius, lines=lines)
    return canvas


def write_picture(path: Path, canvas: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise DataError(f"{path}: cannot write the picture (is the folder writable, the suffix an image type?)")


def faces_record(image_path: Path, out_path: Path | None, faces: list[Face]) -> dict:
    """A picture's JSON record: the picture, the drawing written for it, its faces."""
    return {"image": str(image_path), "picture": None if out_path is None else str(out_path),
            "faces": [face.to_dict() for face in faces]}


def faces_as_text(image_path: Path, out_path: Path | None, faces: list[Face]) -> str:
    found = sum(f.is_face for f in faces)
    lines = [f"{image_path}: {found} face(s)" + (f" -> {out_path}" if out_path else "")]
    for number, face in enumerate(faces, 1):
        head = f"  face {number} box {' '.join(f'{v:.0f}' for v in face.box)}"
        if face.face_prob is not None:
            head += f" p(face) {face.face_prob:.3f}"
        if face.turn:
            head += f" (crop turned {face.turn:.0f} degrees, upright)"
        if face.points is None:
            lines.append(head + " (not a face: no landmarks)")
        else:
            lines.append(head + "\n    " + " ".join(f"{x:.1f},{y:.1f}" for x, y in face.points))
    return "\n".join(lines)


def with_pose(marker, faces: list[Face], image_size: tuple[int, int]) -> list[Face]:
    """Faces with their head pose in ``extra`` (where the scheme gives one)."""
    from ..errors import UsageError
    for face in faces:
        if face.is_face:
            try:
                face.extra["pose"] = marker.pose(face, image_size)
            except UsageError:
                return faces  # a scheme without a 3D face: no pose for any face
    return faces


def write_aligned(marker, rgb: np.ndarray, faces: list[Face], folder: Path, stem: str, size: int) -> list[Path]:
    """Each face's aligned crop as ``<stem>_face<n>.png`` (``_id<n>`` for tracked faces)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, face in enumerate((f for f in faces if f.is_face), 1):
        name = folder / f"{stem}_{'id' if face.id is not None else 'face'}{face.id or number}.png"
        write_picture(name, np.ascontiguousarray(marker.align(rgb, face, size)[:, :, ::-1]))
        written.append(name)
    return written


class JsonLines:
    """Records to stdout (``--json``: nothing else goes there) and/or a JSON lines file."""

    def __init__(self, to_stdout: bool, path: Path | None):
        self.to_stdout = to_stdout
        self.file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w")

    def write(self, record: dict) -> None:
        line = json.dumps(record)
        if self.file:
            self.file.write(line + "\n")
        if self.to_stdout:
            print(line, flush=True)

    def close(self) -> None:
        if self.file:
            self.file.close()


def predict_pictures(args, marker) -> int:
    """--phase predict on pictures: draw, print, and write what was asked for."""
    from .landmarker import as_image
    box = parse_box(args.box) if args.box else None
    images = image_inputs(args.image)
    folder_out = args.image.is_dir() or (args.out is not None and args.out.suffix == "")
    out_base = args.out or Path("predictions")
    records = JsonLines(args.json, args.json_out)
    try:
        for image_path in images:
            out_path = out_base / f"{image_path.stem}_landmarks.png" if folder_out or args.out is None else out_base
            try:
                rgb = as_image(image_path)
                faces = marker.landmarks(rgb, box[None]) if box is not None else marker.detect(rgb)
            except DataError as error:
                if len(images) == 1:
                    raise
                print(f"error: {error}", file=sys.stderr)
                continue
            with_pose(marker, faces, (rgb.shape[1], rgb.shape[0]))
            write_picture(out_path, draw_faces(rgb, faces, marker.scheme.lines))
            if args.align_out:
                write_aligned(marker, rgb, faces, args.align_out, image_path.stem, args.align_size)
            records.write(faces_record(image_path, out_path, faces))
            if not args.json:
                print(faces_as_text(image_path, out_path, faces))
            if not faces:
                print(f"note: no face found in {image_path}; pass --box x1,y1,x2,y2 to give one", file=sys.stderr)
    finally:
        records.close()
    return 0


def predict_video(args, marker) -> int:
    """--phase predict on a video file or a camera: track, smooth, draw, and report the speed."""
    import time

    from .smoothing import OneEuroSettings
    from .track import Tracker
    from .video import WINDOW_HINT, VideoWriter, open_camera, open_video, window_available

    source = open_video(args.video) if args.video is not None else open_camera(args.camera)
    stem = Path(args.video).stem if args.video is not None else f"camera{args.camera}"
    show = args.camera is not None and window_available()
    if args.camera is not None and not show:
        print(f"note: {WINDOW_HINT}; writing the annotated frames instead", file=sys.stderr)
    out_path = args.out or (None if show else Path("predictions") / f"{stem}_landmarks.mp4")
    writer = VideoWriter(out_path, source.fps, source.size) if out_path else None
    smoothing = OneEuroSettings(args.min_cutoff, args.beta) if args.smooth else None
    tracker = Tracker(marker, args.detect_every, smoothing)
    records = JsonLines(args.json, args.json_out)
    frames, working, started = 0, 0.0, time.perf_counter()
    try:
        for index, moment, rgb in source.frames():
            tick = time.perf_counter()
            faces = with_pose(marker, tracker.update(rgb, moment), source.size)
            working += time.perf_counter() - tick
            frames += 1
            records.write({"frame": index, "time": round(moment, 4), "faces": [f.to_dict() for f in faces]})
            canvas = draw_faces(rgb, faces, marker.scheme.lines)
            if args.align_out:
                write_aligned(marker, rgb, faces, args.align_out, f"{stem}_{index:06d}", args.align_size)
            if writer:
                writer.write(canvas)
            if show:
                import cv2
                cv2.imshow("landmarks", canvas)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            if args.camera is not None and frames % 30 == 0:
                print(f"{frames / (time.perf_counter() - started):.1f} fps", file=sys.stderr)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        source.close()
        if writer:
            writer.close()
        records.close()
    total = time.perf_counter() - started
    print(f"{source.name}: {frames} frames, {tracker.next_id - 1} face(s) tracked, the face finder ran "
          f"{tracker.detections} times; {frames / max(working, 1e-9):.0f} frames a second tracking, "
          f"{frames / max(total, 1e-9):.0f} with decoding and writing"
          + (f" -> {out_path}" if writer else ""), file=sys.stderr if args.json else sys.stdout)
    return 0
