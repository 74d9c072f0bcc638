"""Nets in ONNX Runtime (the auto backend): the same faces and points as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landmarks.checkpoint import load_model, resolve_model
from landmarks.config import Config
from landmarks.data.images import load_image
from landmarks.data.scheme import load_scheme
from landmarks.errors import UsageError
from landmarks.inference.faces import make_finder
from landmarks.inference.landmarker import Landmarker
from landmarks.inference.runtime import RuntimeNet, choose_backend, has_onnxruntime
from landmarks.net.faces import fuse_batch_norm
from landmarks.spec import ModelSpec

pytestmark = pytest.mark.skipif(not has_onnxruntime(), reason="onnxruntime is not installed")


def test_auto_picks_onnxruntime_on_a_cpu_and_torch_elsewhere():
    assert choose_backend("auto", torch.device("cpu")) == "onnxruntime"
    assert choose_backend("auto", torch.device("cuda")) == "torch"
    assert choose_backend("torch", torch.device("cpu")) == "torch"
    with pytest.raises(UsageError, match="--backend torch"):
        choose_backend("onnxruntime", torch.device("cuda"))
    with pytest.raises(UsageError, match="backend must be one of"):
        choose_backend("tensorrt", torch.device("cpu"))


def test_a_landmark_model_in_the_runtime_gives_pytorchs_points_and_face_probability_at_any_batch():
    loaded = load_model(resolve_model("stage3"))
    model = loaded.spec.inference_model(loaded.net, True).eval()
    runtime = RuntimeNet(model, torch.zeros(2, 1, 112, 112), {0: "faces"})
    batch = torch.randn(5, 1, 112, 112)
    with torch.no_grad():
        points, prob = model(batch)
    got_points, got_prob = runtime(batch)
    assert got_points.shape == points.shape and got_prob.shape == prob.shape
    assert torch.allclose(got_points, points, atol=1e-5) and torch.allclose(got_prob, prob, atol=1e-5)


def test_the_detector_in_the_runtime_gives_pytorchs_maps_at_another_picture_size():
    loaded = load_model(resolve_model("faces"), expect_task="faces")
    net = fuse_batch_norm(loaded.net.eval())
    runtime = RuntimeNet(net, torch.zeros(1, 3, 128, 128), {2: "height", 3: "width"})
    picture = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        expected = net(picture)
    got = runtime(picture)
    assert set(got) == set(expected)
    for key in expected:
        assert torch.allclose(got[key], expected[key], atol=1e-4), key


def test_whole_pictures_find_the_same_faces_and_points_with_either_backend(sample_dir):
    image = load_image(sample_dir / "I" / "000421.jpg", 3)
    fast, plain = Landmarker(), Landmarker(backend="torch")
    assert fast.backend == "onnxruntime" and fast.finder.backend == "onnxruntime" and plain.backend == "torch"
    a, b = fast.detect(image), plain.detect(image)
    assert len(a) == len(b) and sum(f.is_face for f in a) >= 2
    for x, y in zip(a, b):
        assert np.abs(x.box - y.box).max() < 1e-2 and abs(x.face_prob - y.face_prob) < 1e-4
        assert x.is_face == y.is_face  # candidates the branch refuses come back too, without points
        if x.is_face:
            assert np.abs(x.points - y.points).max() < 1e-2


def test_an_exported_onnx_file_is_refused_with_the_torch_backend(tmp_path):
    with pytest.raises(UsageError, match="--backend onnxruntime"):
        Landmarker(tmp_path / "model.onnx", backend="torch")


def test_the_haar_finder_ignores_the_backend():
    assert make_finder("haar", backend="onnxruntime").name == "haar"


@pytest.mark.parametrize("head", ["regression", "heatmap_offset", "simcc", "simcc_map", "simcc_fine", "simcc_gau"])
def test_every_stage1_head_learns_a_crop_and_runs_the_same_in_the_runtime(head):
    torch.manual_seed(0)
    spec = ModelSpec(Config(net="stage1_wide", head=head), load_scheme("course21"))
    net = spec.build()
    codec = spec.codec(net)
    crops, target = torch.randn(4, 1, 112, 112), torch.rand(4, 21, 2) * 80 + 16
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    losses = []
    for _ in range(30):
        loss = codec.loss(net(crops)["points"], target, 112, lambda p, t, reduction="mean": (p - t).abs().mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    model = spec.inference_model(net.eval(), True)
    runtime = RuntimeNet(model, torch.zeros(2, 1, 112, 112), {0: "faces"})
    with torch.no_grad():
        expected = model(crops)
    got = runtime(crops)
    expected = expected[0] if isinstance(expected, tuple) else expected
    got = got[0] if isinstance(got, tuple) else got
    assert got.shape == (4, 21, 2) and torch.allclose(got, expected, atol=1e-4)


def test_median_seconds_times_each_call_after_the_warm_up(monkeypatch):
    from landmarks.inference import runtime

    calls = []
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # timed calls of 5, 1 and 3 s
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    assert runtime.median_seconds(lambda: calls.append(1), repeats=3, warmup=2) == 3.0
    assert len(calls) == 5  # two untimed, three timed
    clock = iter(range(100))
    calls.clear()
    runtime.median_seconds(lambda: calls.append(1), repeats=40)
    assert len(calls) == 44  # the default warm-up: a tenth of the repeats (at least 3)


def test_negligible_weights_load_as_zero(tmp_path):
    """Weights under float32's normal range, or near enough that their products fall under it
    (decayed towards 0), would take the CPU's slow path."""
    from landmarks.checkpoint import load_model, resolve_model, save_checkpoint

    shipped = load_model(resolve_model("stage1"))
    weight = next(p for p in shipped.net.parameters() if p.dim() > 1)
    with torch.no_grad():
        weight.view(-1)[:4] = torch.tensor([1e-40, -3e-39, 1.3e-38, 1e-15])  # subnormal twice, tiny, small
    save_checkpoint(tmp_path / "m.pt", shipped.net, shipped.spec)
    loaded = dict(load_model(tmp_path / "m.pt").net.named_parameters())
    name = next(n for n, p in shipped.net.named_parameters() if p is weight)
    assert loaded[name].view(-1)[:4].tolist() == [0.0, 0.0, 0.0, pytest.approx(1e-15)]
    assert torch.equal(loaded[name].view(-1)[4:], weight.view(-1)[4:])
