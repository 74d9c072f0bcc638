"""The two face-finder designs side by side on a picture of 700 x 600, on 2 CPU threads:

- MTCNN's first stage alone: its proposal net (P-Net, 12 x 12 windows) over an image pyramid
  (scale step 0.709), for smallest faces of 12, 20 and 40 pixels; untrained weights, since
  only the time is measured, and the refinement and output stages would come on top;
- the shipped single-shot detector (CenterNet-style), whole, at its input size.

    python scripts/bench_designs.py
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch
import torch.nn as nn

from landmarks.inference.faces import make_finder
from landmarks.inference.runtime import median_seconds


def proposal_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 10, 3), nn.PReLU(10), nn.MaxPool2d(2, 2, ceil_mode=True),
                         nn.Conv2d(10, 16, 3), nn.PReLU(16), nn.Conv2d(16, 32, 3), nn.PReLU(32),
                         nn.Conv2d(32, 6, 1)).eval()


def pyramid_scales(height: int, width: int, smallest_face: int) -> list[float]:
    scale, scales = 12 / smallest_face, []
    while min(height, width) * scale >= 12:
        scales.append(scale)
        scale *= 0.709
    return scales


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).integers(0, 255, (600, 700, 3), dtype=np.uint8)
    pnet = proposal_net()
    print(f"picture 700 x 600, {args.threads} threads, torch {torch.__version__}; median ms of {args.repeats} runs")
    for smallest in (12, 20, 40):
        scales = pyramid_scales(600, 700, smallest)

        def pyramid():
            for s in scales:
                small = cv2.resize(image, (round(700 * s), round(600 * s)), interpolation=cv2.INTER_AREA)
                x = torch.from_numpy(small).permute(2, 0, 1)[None].float().div(127.5).sub(1)
                with torch.inference_mode():
                    pnet(x)
        print(f"MTCNN P-Net pyramid, smallest face {smallest:2d} px: {len(scales):2d} scales "
              f"{1000 * median_seconds(pyramid, args.repeats):7.1f} ms")
    finder = make_finder("default")
    print(f"single-shot detector ({getattr(finder, 'name', '?')}, input {getattr(finder, 'size', '?')}), whole: "
          f"{1000 * median_seconds(lambda: finder(image), args.repeats):7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
