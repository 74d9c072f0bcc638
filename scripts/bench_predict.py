"""CPU inference speed of every shipped model: eager PyTorch, TorchScript, ONNX Runtime.

Per-face latency at batch 1 and throughput at batch 64, on one thread by default.

    python scripts/bench_predict.py [--threads 1] [--models stage1 stage2] [--nodes 8]

``--nodes N`` adds, for each model, the N ONNX Runtime nodes that take most of its time at batch 1,
with the shapes of their first two inputs.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import tempfile
import warnings
from pathlib import Path

import torch

from landmarks.checkpoint import load_model, resolve_model, shipped_models
from landmarks.inference.export import export_model
from landmarks.inference.runtime import median_seconds, runtime_session
from landmarks.net import count_parameters


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="shipped names or checkpoints (default: all shipped)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=200, help="timed runs at batch 1 (default: 200)")
    parser.add_argument("--nodes", type=int, default=0, metavar="N",
                        help="also list the N ONNX Runtime nodes that take most time (default: 0, none)")
    args = parser.parse_args(argv)
    # TorchScript is deprecated but still the fastest backend for some models here; measure it quietly.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    print(f"{'model':10s} {'net':12s} {'params':>9s} {'backend':12s} {'ms/face b1':>11s} {'faces/s b64':>12s}")
    for name in args.models or shipped_models():
        loaded = load_model(resolve_model(name), expect_task=None)
        if loaded.spec.task != "landmarks":
            continue  # the face detector runs once a picture: scripts/bench_pictures.py times it
        model, config = loaded.spec.inference_model(loaded.net), loaded.config
        shape = (config.channels, config.input_size, config.input_size)
        one, many = torch.randn(1, *shape), torch.randn(64, *shape)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_file = export_model(model, loaded.spec, "onnx", Path(tmp) / "m.onnx")
            script_file = export_model(model, loaded.spec, "torchscript", Path(tmp) / "m.pt")
            scripted = torch.jit.optimize_for_inference(torch.jit.load(str(script_file)).eval())
            session = runtime_session(onnx_file, args.threads)
            backends = {
                "eager": lambda x: model(x),
                "torchscript": lambda x: scripted(x),
                "onnxruntime": lambda x: session.run(None, {"image": x.numpy()}),
            }
            with torch.inference_mode():
                for backend, run in backends.items():
                    latency = median_seconds(lambda: run(one), args.repeats)
                    batch = median_seconds(lambda: run(many), max(args.repeats // 10, 10))
                    print(f"{name:10s} {config.net:12s} {count_parameters(model):9d} {backend:12s} "
                          f"{latency * 1000:11.3f} {64 / batch:12.0f}")
            if args.nodes:
                print_slowest_nodes(onnx_file, one.numpy(), args, str(Path(tmp) / "profile"))
    return 0


def print_slowest_nodes(onnx_file, one, args, prefix: str) -> None:
    """The ``args.nodes`` nodes of most time a run at batch 1 (ONNX Runtime's own profile)."""
    session = runtime_session(onnx_file, args.threads, profile_prefix=prefix)
    for _ in range(args.repeats):
        session.run(None, {"image": one})
    with open(session.end_profiling()) as handle:
        events = [e for e in json.load(handle) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    micros, shapes = collections.Counter(), {}
    for event in events:
        key = (event["args"].get("op_name", "?"), event["name"][:-len("_kernel_time")])
        micros[key] += event["dur"] / args.repeats
        shapes[key] = [list(t.values())[0] for t in event["args"].get("input_type_shape", [])[:2]]
    total = sum(micros.values())
    for (op, node), us in micros.most_common(args.nodes):
        print(f"  {us:8.1f} us {us / total:6.1%}  {op:10s} {node[:36]:36s} inputs {shapes[(op, node)]}")


if __name__ == "__main__":
    raise SystemExit(main())
