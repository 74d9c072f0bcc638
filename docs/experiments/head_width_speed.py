"""Where a point-map model's time a face goes in ONNX Runtime, and what the head's width costs.

Profiles the model as the runtime runs it (batch 1, one thread): kernel time by operator type.
Then times the same net rebuilt with each ``--heads`` and ``--simcc-features`` given (fresh
weights: weights do not change the time), in interleaved rounds so that a slower moment of the
machine hits them all.

    python docs/experiments/head_width_speed.py --model runs/w300/last.pt --features 256 128 64
    python docs/experiments/head_width_speed.py --model runs/w300/last.pt --heads simcc_map simcc_gau --features 128 64
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from landmarks.checkpoint import load_model, resolve_model
from landmarks.inference.export import export_model
from landmarks.inference.runtime import median_seconds


def session(model, spec, folder: Path, name: str, profile: bool = False):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / f"{name}-profile")
    onnx_file = export_model(model, spec, "onnx", folder / f"{name}.onnx")
    return onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])


def kernel_time_by_op(run, image, calls: int) -> dict[str, float]:
    """Median microseconds a call of each node, summed by operator type."""
    for _ in range(calls):
        run.run(None, {"image": image})
    events = json.loads(Path(run.end_profiling()).read_text())
    by_node = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_node[(event["name"], event["args"].get("op_name"))].append(event["dur"])
    by_op = collections.Counter()
    for (_, op), times in by_node.items():
        by_op[op] += statistics.median(times[calls // 5:])
    return dict(by_op.most_common())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a landmark checkpoint with a point-map head (simcc_map, ...)")
    parser.add_argument("--heads", nargs="+", default=None, help="point-map heads to time (default: the model's)")
    parser.add_argument("--features", type=int, nargs="+", default=[256, 128, 64],
                        help="--simcc-features values to time (default: 256 128 64)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls a round (default: 300)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    loaded = load_model(resolve_model(args.model), expect_task=None)
    config = loaded.config
    image = np.random.default_rng(0).standard_normal(
        (1, config.channels, config.input_size, config.input_size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        profiled = session(loaded.spec.inference_model(loaded.net), loaded.spec, folder, "model", profile=True)
        by_op = kernel_time_by_op(profiled, image, args.repeats)
        total = sum(by_op.values())
        print(f"{args.model}: kernel time a call {total:.0f} us; by operator: "
              + ", ".join(f"{op} {us:.0f} ({us / total:.0%})" for op, us in by_op.items() if us >= 0.01 * total))
        runs = {}
        for head in args.heads or [config.head]:
            for features in args.features:
                spec = dataclasses.replace(loaded.spec, config=dataclasses.replace(config, head=head,
                                                                                   simcc_features=features))
                runs[f"--head {head} --simcc-features {features}"] = session(
                    spec.inference_model(spec.build().eval()), spec, folder, f"{head}-f{features}")
        times = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                times[name].append(1000 * median_seconds(lambda: run.run(None, {"image": image}), args.repeats))
    for name, values in times.items():
        print(f"{name}: median ms a face {statistics.median(values):.3f} "
              f"(rounds: {' '.join(f'{v:.3f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
