"""Tracking on clips made from a picture of data/: jitter, lag, and frames a second.

- Jitter: on a still face (the picture repeated with sensor noise), the mean frame-to-frame
  movement of the points, as % of the face's size, raw and smoothed (One Euro filter).
- Lag: on the face panned across the frame at constant speed, how many frames the smoothed
  points trail the raw ones (mean raw - smoothed along the motion, over the speed), once the
  motion is under way.
- Tilt: the picture turning from upright to 45 degrees over the clip (its annotated faces
  turned with it, from the picture's label.txt): the share of face-frames whose tracked points
  have NME_box < 10 %, with the second look turned upright and without (``--turn-above 0``).
- Speed: frames a second of tracking one face (the tracker alone), and with decoding the
  video file and drawing and writing the annotated one.

    python scripts/bench_video.py --picture data/I/000495.jpg
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from landmarks.data.formats import parse_label_line
from landmarks.data.images import load_image
from landmarks.geometry import affine_points, box_scale
from landmarks.inference.clips import pan_frames, still_frames, tilt_frames, write_clip
from landmarks.inference.evaluate import FOUND_NME
from landmarks.inference.landmarker import Landmarker, LandmarkerSettings
from landmarks.inference.predict import draw_faces
from landmarks.inference.runtime import BACKENDS
from landmarks.inference.track import Tracker, TrackSettings
from landmarks.inference.video import VideoWriter, open_video
from landmarks.metrics import box_normaliser, match_faces, nme


def track(marker, frames, fps, settings):
    tracker = Tracker(marker, settings)
    return [tracker.update(frame, i / fps)[0].points for i, frame in enumerate(frames)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--picture", type=Path, default=Path("data/I/000495.jpg"), help="(default: %(default)s)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=25.0, help="(default: %(default)s)")
    parser.add_argument("--min-cutoff", type=float, default=TrackSettings.min_cutoff, help="(default: %(default)s)")
    parser.add_argument("--beta", type=float, default=TrackSettings.beta, help="(default: %(default)s)")
    parser.add_argument("--model", default="stage3", help="(default: %(default)s)")
    parser.add_argument("--detector", default="default", help="(default: the shipped detector)")
    parser.add_argument("--threads", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="how the nets run (default: auto, ONNX Runtime where installed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    marker = Landmarker(args.model, detector=args.detector, backend=args.backend)
    smoothing = TrackSettings(min_cutoff=args.min_cutoff, beta=args.beta)
    unsmoothed = dataclasses.replace(smoothing, smooth=False)
    image = load_image(args.picture, 3)

    still = still_frames(image, args.frames)
    raw, smooth = (np.array(track(marker, still, args.fps, s)) for s in (unsmoothed, smoothing))
    size = float(box_scale(marker.scheme.face_boxes(raw[0])))  # as the tracker scales its filter

    def jitter(points):
        return float(np.linalg.norm(np.diff(points[10:], axis=0), axis=-1).mean() / size * 100)

    print(f"{args.picture} ({image.shape[1]} x {image.shape[0]}), face {size:.0f} px, {args.fps:g} fps, "
          f"One Euro min_cutoff {args.min_cutoff:g} Hz, beta {args.beta:g}")
    print(f"jitter on the still clip: raw {jitter(raw):.3f} %, smoothed {jitter(smooth):.3f} % of the face size "
          f"a frame ({jitter(raw) / max(jitter(smooth), 1e-9):.1f}x less)")

    pan, shifts = pan_frames(image, args.frames)
    raw, smooth = (np.array(track(marker, pan, args.fps, s)) for s in (unsmoothed, smoothing))
    speed = float(np.diff(shifts).mean())  # pixels a frame
    steady = slice(args.frames // 4, None)
    lag = float((raw[steady, :, 0] - smooth[steady, :, 0]).mean() / speed)
    print(f"lag on the pan ({speed:.1f} px a frame): {lag:.2f} frames")

    label = args.picture.parent / "label.txt"
    truth = [parse_label_line(line)[2] for line in label.open() if line.split()[:1] == [args.picture.name]] \
        if label.is_file() else []
    if truth:
        # The tracked face's own annotation (found at the first frame), moved with the pan.
        start = np.array(truth) + [shifts[0], 0.0]
        first, _ = match_faces([raw[0]], start, FOUND_NME)
        if np.isnan(first).all():
            print("NME_box on the pan: the face tracked is not an annotated one")
        else:
            moved = np.array(truth)[int(np.nanargmin(first))][None] + np.stack([shifts, 0 * shifts], 1)[:, None]
            norm = box_normaliser(moved)
            pan_nme = {name: float(nme(points[steady], moved[steady], norm[steady]).mean() * 100)
                       for name, points in (("raw", raw), ("smoothed", smooth))}
            print(f"NME_box on the pan: raw {pan_nme['raw']:.2f} %, smoothed {pan_nme['smoothed']:.2f} % "
                  f"({pan_nme['smoothed'] - pan_nme['raw']:+.2f} points)")
        tilt, matrices = tilt_frames(image, args.frames)
        figures = {}
        for name, above in (("turned", LandmarkerSettings.turn_above), ("unturned", 0)):
            follower = Landmarker(args.model, detector=args.detector, turn_above=above, backend=args.backend)
            tracker, errors = Tracker(follower, smoothing), []
            for i, (frame, matrix) in enumerate(zip(tilt, matrices)):
                faces = [f for f in tracker.update(frame, i / args.fps) if f.is_face]
                nmes, _ = match_faces([f.points for f in faces], affine_points(np.array(truth), matrix), FOUND_NME)
                errors.append(nmes)
            errors = np.array(errors)  # [frames, faces]; NaN: not found
            late = errors[len(errors) // 2:]  # turned 22-45 degrees
            figures[name] = (float((~np.isnan(errors)).mean()), float(np.nanmean(late) * 100))
        print(f"tilting to 45 degrees ({len(truth)} annotated face(s)): points within {FOUND_NME:.0%} in "
              + ", ".join(f"{found:.2f} of the face-frames {name} (NME_box {late:.2f} % from 22 degrees on)"
                          for name, (found, late) in figures.items()))

    def tracked(frames) -> float:
        """Seconds spent tracking the frames (after a warm-up on a tracker of its own)."""
        warm = Tracker(marker, smoothing)
        for i, frame in enumerate(frames[:5]):
            warm.update(frame, i / args.fps)
        tracker = Tracker(marker, smoothing)
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            tracker.update(frame, i / args.fps)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(pan, Path(folder) / "pan.mp4", args.fps)
        source = open_video(clip)
        decoded = [rgb for _, _, rgb in source.frames()]  # decoding excluded from the first figure
        source.close()
        alone = min(tracked(decoded) for _ in range(3))
        tracker = Tracker(marker, smoothing)
        start = time.perf_counter()
        source = open_video(clip)
        writer = VideoWriter(Path(folder) / "out.mp4", source.fps, source.size)
        frames = 0
        for index, moment, rgb in source.frames():
            writer.write(draw_faces(rgb, tracker.update(rgb, moment), marker.scheme.lines))
            frames += 1
        source.close()
        writer.close()
        total = time.perf_counter() - start
    print(f"tracking one face: {len(decoded) / alone:.0f} frames a second (decoded frames in memory, the best of 3 "
          f"passes); {frames / total:.0f} with decoding, drawing and writing the video ({args.threads} threads; "
          f"the face finder ran {tracker.detections} times in {frames} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
