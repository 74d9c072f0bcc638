"""A landmark model's ONNX export quantized to 8 bits (ONNX Runtime's static quantization: QDQ
form, weights per channel, activations calibrated on training crops), timed against the float
export at batch 1 and 2 (a crop with its mirror image, as test-time flip runs it) on one thread,
and how far its points move from the float model's on the calibration crops.

    python -m landmarks.detector --phase export --model runs/w300/last.pt --format onnx --out w300.onnx
    python docs/experiments/int8_onnx.py --onnx w300.onnx --train-list lists/w300/train.txt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from landmarks.inference.runtime import median_seconds


def median_ms(session, batch: np.ndarray, repeats: int) -> float:
    return 1000 * median_seconds(lambda: session.run(None, {"image": batch}), repeats, warmup=repeats // 5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="an exported landmark model (its .json beside it)")
    parser.add_argument("--train-list", type=Path, required=True, help="crops to calibrate on (the model's scheme)")
    parser.add_argument("--crops", type=int, default=128, help="calibration crops (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=300, help="timed runs a form (default: %(default)s)")
    args = parser.parse_args(argv)

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from landmarks.data import FaceLandmarksDataset
    from landmarks.data.labels import read_list

    config = json.loads(Path(f"{args.onnx}.json").read_text())["config"]
    entries = read_list(args.train_list).entries[:args.crops]
    points = len(entries[0].points)
    crops = next(FaceLandmarksDataset(entries, num_points=points, size=config["input_size"]).batches(len(entries)))
    batch = crops["image"].numpy()

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.left = iter(batch[i:i + 1] for i in range(len(batch)))

        def get_next(self):
            crop = next(self.left, None)
            return None if crop is None else {"image": crop}

    prepared = args.onnx.with_name(f"{args.onnx.stem}-prepared.onnx")
    quantized = args.onnx.with_name(f"{args.onnx.stem}-int8.onnx")
    quant_pre_process(str(args.onnx), str(prepared))
    quantize_static(str(prepared), str(quantized), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for name, path in (("float32", args.onnx), ("int8", quantized))}
    for name, session in sessions.items():
        print(f"{name:8s} batch 1 {median_ms(session, batch[:1], args.repeats):.3f} ms   "
              f"batch 2 {median_ms(session, batch[:2], args.repeats):.3f} ms   (median, one thread)")
    exact, rough = (s.run(None, {"image": batch})[0] for s in sessions.values())
    moved = np.abs(exact - rough)
    print(f"int8 points against float32 on {len(batch)} crops: mean {100 * moved.mean():.2f} %, "
          f"largest {100 * moved.max():.1f} % of the crop's side")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
