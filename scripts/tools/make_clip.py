"""Make a short video from one picture: a still face with sensor noise, or the face panned across.

    python scripts/tools/make_clip.py data/II/006082.jpg clip.mp4 --motion pan --frames 50
"""

from __future__ import annotations

import argparse
from pathlib import Path

from landmarks.data.images import load_image
from landmarks.cli import run_cli
from landmarks.files import Outputs
from landmarks.inference.clips import pan_frames, still_frames, write_clip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("picture", type=Path)
    parser.add_argument("out", type=Path, help="the clip to write (.mp4)")
    parser.add_argument("--motion", choices=("still", "pan"), default="pan", help="(default: %(default)s)")
    parser.add_argument("--frames", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument("--fps", type=float, default=25.0, help="(default: %(default)s)")
    args = parser.parse_args(argv)

    def job():
        outputs = Outputs()
        outputs.reads("picture", args.picture)
        outputs.check("out", args.out)
        image = load_image(args.picture, 3)
        frames = still_frames(image, args.frames) if args.motion == "still" else pan_frames(image, args.frames)[0]
        print(f"wrote {write_clip(frames, args.out, args.fps)} ({len(frames)} frames, {args.motion})")
    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())
