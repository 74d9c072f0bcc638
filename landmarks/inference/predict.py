"""What --phase predict writes: pictures with faces drawn, JSON and text, picture inputs."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.images import IMAGE_SUFFIXES
from ..data.writers import PictureFaces, write_annotations
from ..draw import GREEN, RED, draw_box, draw_points, marker_radius
from ..errors import DataError, UsageError
from ..files import Outputs, PartFile
from .landmarker import Face, as_image
from .track import Tracker, TrackSettings
from .video import WINDOW_HINT, VideoWriter, open_camera, open_video, window_available


def parse_box(text: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise UsageError(f"--box takes x1,y1,x2,y2 with x2 > x1 and y2 > y1, got {text!r}")
    return np.array(values)


# Pictures this tool draws carry this in their EXIF Software tag, so that a later run on the
# folder they were written to takes them for outputs, not for new pictures.
DRAWN_BY = "landmarks predict"
EXIF_SOFTWARE = 0x0131


def drawn_by_us(path: Path) -> bool:
    """Whether a picture file is one that --phase predict wrote (reads the header only)."""
    try:
        with Image.open(path) as image:
            return image.getexif().get(EXIF_SOFTWARE) == DRAWN_BY
    except (OSError, ValueError):
        return False


def image_inputs(path: Path) -> list[Path]:
    """The images to predict on: one file, or every image file in a folder (others named, on
    stderr, and skipped, as are the pictures an earlier run drew there)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        pictures = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        images = [p for p in pictures if not drawn_by_us(p)]
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            print(f"note: skipping {len(others)} non-image file(s) in {path}: {', '.join(others[:5])}"
                  + (" ..." if len(others) > 5 else ""), file=sys.stderr)
        if len(images) < len(pictures):
            print(f"note: skipping {len(pictures) - len(images)} picture(s) in {path} that an earlier "
                  "--phase predict drew", file=sys.stderr)
        if not images:
            raise DataError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    if not path.exists():
        raise DataError(f"{path}: image not found")
    return [path]


def free_name(folder: Path, stem: str, suffix: str, outputs: Outputs) -> Path:
    """``folder/stem+suffix``, or with -2, -3 ... added where that name is one of the inputs."""
    path, number = folder / f"{stem}{suffix}", 1
    while outputs.input_flag(path) is not None:
        number += 1
        path = folder / f"{stem}-{number}{suffix}"
    return path


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


def write_picture(path: Path, canvas: np.ndarray, outputs: Outputs, flag: str = "--out") -> Path:
    """A BGR picture, written whole, marked as drawn by this tool (see drawn_by_us)."""
    exif = Image.Exif()
    exif[EXIF_SOFTWARE] = DRAWN_BY
    encoded = io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(canvas[:, :, ::-1])).save(
            encoded, format=Image.registered_extensions().get(path.suffix.lower()), exif=exif)
    except (KeyError, ValueError, OSError):
        raise UsageError(f"{flag} {path}: cannot write a picture of that type (use .png or .jpg)") from None
    return outputs.write_bytes(flag, path, encoded.getvalue())


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
    for face in faces:
        if face.is_face:
            try:
                face.extra["pose"] = marker.pose(face, image_size)
            except UsageError:
                return faces  # a scheme without a 3D face: no pose for any face
    return faces


def write_aligned(marker, rgb: np.ndarray, faces: list[Face], folder: Path, stem: str, size: int,
                  outputs: Outputs) -> list[Path]:
    """Each face's aligned crop as ``<stem>_face<n>.png`` (``_id<n>`` for tracked faces)."""
    written = []
    for number, face in enumerate((f for f in faces if f.is_face), 1):
        name = free_name(folder, f"{stem}_{'id' if face.id is not None else 'face'}{face.id or number}", ".png",
                         outputs)
        written.append(write_picture(name, marker.align(rgb, face, size)[:, :, ::-1], outputs, "--align-out"))
    return written


class JsonLines:
    """Records to stdout (``--json``: nothing else goes there) and/or a JSON lines file, which
    gets its name when ``close`` ends a run that was not cut short by an error."""

    def __init__(self, to_stdout: bool, path: Path | None):
        self.to_stdout = to_stdout
        self.file = self.part = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.part = PartFile(path)
            self.file = open(self.part.part, "w")

    def write(self, record: dict) -> None:
        line = json.dumps(record)
        if self.file:
            self.file.write(line + "\n")
        if self.to_stdout:
            print(line, flush=True)

    def close(self, complete: bool = True) -> None:
        if self.file:
            self.file.close()
            if complete:
                self.part.finish()
            else:
                self.part.discard()


class LabelsOut:
    """``--labels-out``: the faces found, as annotations a tool imports (``writers``). Each
    picture's faces go to a hidden progress file beside the labels as soon as they are found;
    the labels are written whole at the end. A run stopped half way and started again skips the
    pictures its progress file holds."""

    def __init__(self, path: Path, fmt: str, scheme, root: Path, outputs: Outputs):
        self.path, self.fmt, self.scheme, self.root, self.outputs = Path(path), fmt, scheme, root, outputs
        outputs.check("--labels-out", self.path)
        self.progress = self.path.with_name(f".{self.path.name}.progress.jsonl")
        self.done: dict[str, dict] = {}
        if self.progress.is_file():
            for line in self.progress.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    self.done[record["image"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by the stop: that picture is done again
        self.progress.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.progress, "a", encoding="utf-8")

    def has(self, image: Path) -> bool:
        return str(Path(image).resolve()) in self.done

    def add(self, image: Path, width: int, height: int, faces: list[Face]) -> None:
        record = {"image": str(Path(image).resolve()), "width": width, "height": height,
                  "faces": [[face.box.tolist(), face.points.tolist()] for face in faces if face.is_face]}
        self.done[record["image"]] = record
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self, complete: bool) -> None:
        """Write the labels (``complete``); else keep the progress for the next run."""
        self.file.close()
        if not complete:
            return
        pictures = [PictureFaces(Path(r["image"]), r["width"], r["height"],
                                 [(np.array(box), np.array(points)) for box, points in r["faces"]])
                    for r in self.done.values()]
        written = write_annotations(self.fmt, self.path, pictures, self.scheme, self.root, self.outputs,
                                    "--labels-out")
        self.progress.unlink(missing_ok=True)
        where = f"; picture paths relative to {self.root} (--data-dir to read it)" if self.fmt == "coco" else ""
        print(f"labels: {self.path} ({self.fmt}, {sum(len(p.faces) for p in pictures)} faces in {len(pictures)} "
              f"pictures, {len(written)} file(s){where})", file=sys.stderr)


def predict_pictures(marker, image: Path, outputs: Outputs, *, out: Path | None = None, box: str | None = None,
                     json_stdout: bool = False, json_out: Path | None = None, align_out: Path | None = None,
                     align_size: int = 112, labels_out: Path | None = None, labels_format: str = "coco",
                     progress: bool = True) -> int:
    """--phase predict on a picture or a folder: draw, print, and write what was asked for.
    ``out``: the drawing (a folder, or a picture file for one picture; default predictions/);
    ``labels_out``: the faces as annotations (see LabelsOut). A folder shows a progress bar."""
    face_box = parse_box(box) if box is not None else None
    images = image_inputs(image)
    outputs.reads("--image", *images)
    folder_out = image.is_dir() or (out is not None and out.suffix == "")
    out_base = out or Path("predictions")
    if not folder_out:
        outputs.check("--out", out_base)
    if json_out is not None:
        outputs.check("--json-out", json_out)
    records = JsonLines(json_stdout, json_out)
    labels = (LabelsOut(labels_out, labels_format, marker.scheme, image if image.is_dir() else image.parent,
                        outputs) if labels_out is not None else None)
    if labels is not None and labels.done:
        print(f"note: {len(labels.done)} picture(s) already in {labels.progress}: skipping them", file=sys.stderr)
    todo = [path for path in images if labels is None or not labels.has(path)]
    complete = False
    try:
        for image_path in tqdm(todo, desc="pictures", unit="pic", disable=not progress or len(todo) < 2):
            out_path = free_name(out_base, f"{image_path.stem}_landmarks", ".png", outputs) if folder_out else out_base
            try:
                rgb = as_image(image_path)
                faces = marker.landmarks(rgb, face_box[None]) if face_box is not None else marker.detect(rgb)
            except DataError as error:
                if len(images) == 1:
                    raise
                print(f"error: {error}", file=sys.stderr)
                continue
            with_pose(marker, faces, (rgb.shape[1], rgb.shape[0]))
            write_picture(out_path, draw_faces(rgb, faces, marker.scheme.lines), outputs)
            if align_out:
                write_aligned(marker, rgb, faces, align_out, image_path.stem, align_size, outputs)
            records.write(faces_record(image_path, out_path, faces))
            if labels is not None:
                labels.add(image_path, rgb.shape[1], rgb.shape[0], faces)
            if not json_stdout:
                tqdm.write(faces_as_text(image_path, out_path, faces))
            if not faces:
                print(f"note: no face found in {image_path}; pass --box x1,y1,x2,y2 to give one", file=sys.stderr)
        complete = True
    finally:
        records.close(complete)
        if labels is not None:
            labels.close(complete)
    return 0


def predict_video(marker, outputs: Outputs, *, video: Path | None = None, camera: int | None = None,
                  settings: TrackSettings = TrackSettings(), out: Path | None = None, json_stdout: bool = False,
                  json_out: Path | None = None, align_out: Path | None = None, align_size: int = 112) -> int:
    """--phase predict on a video file or a camera: track, smooth, draw, and report the speed.
    The video and the JSON lines get their names when the run ends (Ctrl-C too), not before."""
    outputs.reads("--video", video)
    source = open_video(video) if video is not None else open_camera(camera)
    stem = Path(video).stem if video is not None else f"camera{camera}"
    show = camera is not None and window_available()
    if camera is not None and not show:
        print(f"note: {WINDOW_HINT}; writing the annotated frames instead", file=sys.stderr)
    out_path = out or (None if show else Path("predictions") / f"{stem}_landmarks.mp4")
    try:
        if out_path is not None:
            outputs.check("--out", out_path)
        if json_out is not None:
            outputs.check("--json-out", json_out)
    except UsageError:
        source.close()
        raise
    writer = VideoWriter(out_path, source.fps, source.size) if out_path else None
    tracker = Tracker(marker, settings)
    records = JsonLines(json_stdout, json_out)
    frames, working, started, complete = 0, 0.0, time.perf_counter(), False
    try:
        for index, moment, rgb in source.frames():
            tick = time.perf_counter()
            faces = with_pose(marker, tracker.update(rgb, moment), source.size)
            working += time.perf_counter() - tick
            frames += 1
            records.write({"frame": index, "time": round(moment, 4), "faces": [f.to_dict() for f in faces]})
            canvas = draw_faces(rgb, faces, marker.scheme.lines)
            if align_out:
                write_aligned(marker, rgb, faces, align_out, f"{stem}_{index:06d}", align_size, outputs)
            if writer:
                writer.write(canvas)
            if show:
                cv2.imshow("landmarks", canvas)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            if camera is not None and frames % 30 == 0:
                print(f"{frames / (time.perf_counter() - started):.1f} fps", file=sys.stderr)
        complete = True
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        complete = True  # what was tracked until then is whole
    finally:
        source.close()
        if writer:
            writer.close(complete)
        records.close(complete)
    total = time.perf_counter() - started
    print(f"{source.name}: {frames} frames, {tracker.next_id - 1} face(s) tracked, the face finder ran "
          f"{tracker.detections} times; {frames / max(working, 1e-9):.0f} frames a second tracking, "
          f"{frames / max(total, 1e-9):.0f} with decoding and writing"
          + (f" -> {out_path}" if writer else ""), file=sys.stderr if json_stdout else sys.stdout)
    return 0
