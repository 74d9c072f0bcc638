"""Tracking on clips made from a picture of data/: jitter, lag, and frames a second.

- Jitter: on a still face (the picture repeated with sensor noise), the mean frame-to-frame
  movement of the points, as % of the face's size, raw and smoothed (One Euro filter).
- Lag: on the face panned across the frame at constant speed, how many frames the smoothed
  points trail the raw ones (mean raw - smoothed along the motion, over the speed), once the
  motion is under way.
- Speed: frames a second of tracking one face (the tracker alone), and with decoding the
  video file and drawing and writing the annotated one.

    python scripts/bench_video.py --picture data/I/000495.jpg
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from landmarks.data.images import load_image
from landmarks.geometry import box_scale
from landmarks.inference.clips import pan_frames, still_frames, write_clip
from landmarks.inference.landmarker import Landmarker
from landmarks.inference.predict import draw_faces
from landmarks.inference.smoothing import OneEuroSettings
from landmarks.inference.track import Tracker
from landmarks.inference.video import VideoWriter, open_video


def track(marker, frames, fps, smoothing):
    tracker = Tracker(marker, detect_every=10, smoothing=smoothing)
    return [tracker.update(frame, i / fps)[0].points for i, frame in enumerate(frames)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--picture", type=Path, default=Path("data/I/000495.jpg"), help="(default: %(default)s)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=25.0, help="(default: %(default)s)")
    parser.add_argument("--min-cutoff", type=float, default=OneEuroSettings.min_cutoff, help="(default: %(default)s)")
    parser.add_argument("--beta", type=float, default=OneEuroSettings.beta, help="(default: %(default)s)")
    parser.add_argument("--model", default="stage3", help="(default: %(default)s)")
    parser.add_argument("--detector", default="default", help="(default: the shipped detector)")
    parser.add_argument("--threads", type=int, default=2, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    marker = Landmarker(args.model, detector=args.detector)
    smoothing = OneEuroSettings(args.min_cutoff, args.beta)
    image = load_image(args.picture, 3)

    still = still_frames(image, args.frames)
    raw, smooth = (np.array(track(marker, still, args.fps, s)) for s in (None, smoothing))
    size = float(box_scale(marker.scheme.face_boxes(raw[0])))  # as the tracker scales its filter

    def jitter(points):
        return float(np.linalg.norm(np.diff(points[10:], axis=0), axis=-1).mean() / size * 100)

    print(f"{args.picture} ({image.shape[1]} x {image.shape[0]}), face {size:.0f} px, {args.fps:g} fps, "
          f"One Euro min_cutoff {args.min_cutoff:g} Hz, beta {args.beta:g}")
    print(f"jitter on the still clip: raw {jitter(raw):.3f} %, smoothed {jitter(smooth):.3f} % of the face size "
          f"a frame ({jitter(raw) / max(jitter(smooth), 1e-9):.1f}x less)")

    pan, shifts = pan_frames(image, args.frames)
    raw, smooth = (np.array(track(marker, pan, args.fps, s)) for s in (None, smoothing))
    speed = float(np.diff(shifts).mean())  # pixels a frame
    steady = slice(args.frames // 4, None)
    lag = float((raw[steady, :, 0] - smooth[steady, :, 0]).mean() / speed)
    print(f"lag on the pan ({speed:.1f} px a frame): {lag:.2f} frames")

    def tracked(frames) -> float:
        """Seconds spent tracking the frames (after a warm-up on a tracker of its own)."""
        warm = Tracker(marker, detect_every=10, smoothing=smoothing)
        for i, frame in enumerate(frames[:5]):
            warm.update(frame, i / args.fps)
        tracker = Tracker(marker, detect_every=10, smoothing=smoothing)
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
        tracker = Tracker(marker, detect_every=10, smoothing=smoothing)
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
