import pytest
import torch

from landmarks.errors import UsageError
from landmarks.codecs import Regression, build_codec
from landmarks.data.scheme import load_scheme
from landmarks.net import NETS, InferenceModel, PReLU, build_net, freeze, layer_names

FLIP = load_scheme("course21").flip_permutation

STAGE1_LAYERS = ["conv1_1", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "ip1", "ip2", "ip3"]


def test_stage1_has_the_course_layer_names_and_shapes():
    net = build_net("stage1", num_points=21)
    names = [n for n, m in net.named_children() if any(True for _ in m.parameters())]
    assert names == STAGE1_LAYERS
    assert net.conv1_1[0].kernel_size == (5, 5) and net.conv1_1[0].stride == (2, 2)
    assert net.conv1_1[0].out_channels == 8 and net.conv4_2[0].out_channels == 80
    assert net.ip1[0].in_features == 4 * 4 * 80 and net.ip3.out_features == 42
    assert isinstance(net.conv1_1[-1], torch.nn.PReLU) and isinstance(net.ip2[-1], torch.nn.PReLU)


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_net_gives_k_points_and_optionally_face_logits_and_attributes(name, channels):
    x = torch.rand(2, channels, 112, 112)
    net = build_net(name, num_points=21, channels=channels).eval()
    out = net(x)
    assert set(out) == {"points"}
    points = InferenceModel(net, build_codec(net.codec, 21))(x)
    assert points.shape == (2, 21, 2)
    net = build_net(name, num_points=5, channels=channels, classify=True, aux_classes={"yaw": 3}).eval()
    out = net(x)
    assert out["face_logits"].shape == (2, 2) and out["aux"]["yaw"].shape == (2, 3)
    points, prob = InferenceModel(net, build_codec(net.codec, 5))(x)
    assert points.shape == (2, 5, 2) and prob.shape == (2,) and ((prob >= 0) & (prob <= 1)).all()


def test_freeze_takes_prefixes_and_rejects_unknown_names():
    net = build_net("stage1", num_points=21)
    assert freeze(net, ["conv1", "conv2"]) == ["conv1_1", "conv2_1", "conv2_2"]
    assert not any(p.requires_grad for p in net.conv2_2.parameters())
    assert all(p.requires_grad for p in net.conv3_1.parameters())
    with pytest.raises(UsageError, match="unknown layer conv9; valid names: conv1, conv1_1"):
        freeze(net, ["conv9"])
    assert "conv4" in layer_names(net) and "pool1" not in layer_names(net)


def test_unknown_net_lists_the_choices():
    with pytest.raises(UsageError, match="unknown net 'vgg'; choose one of"):
        build_net("vgg", num_points=21)


def test_flip_average_is_exact_for_a_mirror_symmetric_net():
    """A net that answers the same for an image and its mirror (after un-flipping) is unchanged."""

    class Symmetric(torch.nn.Module):
        def forward(self, x):
            b = x.shape[0]
            points = torch.full((b, 21, 2), 0.5)
            points[:, :, 1] = x.mean(dim=(1, 2, 3)).unsqueeze(1)  # y from a flip-invariant statistic
            return {"points": points.reshape(b, 42)}

    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(InferenceModel(Symmetric(), Regression(21), FLIP)(x),
                               InferenceModel(Symmetric(), Regression(21))(x))


def test_flip_average_undoes_the_mirror():
    class ReadsLeftHalf(torch.nn.Module):
        """x of every point = brightness of the left half: differs between image and mirror."""
        def forward(self, x):
            left = x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3))
            points = torch.stack([left, torch.zeros_like(left)], -1)[:, None].repeat(1, 21, 1)
            return {"points": points.reshape(x.shape[0], 42)}

    x = torch.zeros(1, 1, 4, 4)
    x[..., :2] = 1.0  # bright left half: direct answer 1, mirrored answer 0 -> un-flipped 1 - 0 = 1
    torch.testing.assert_close(InferenceModel(ReadsLeftHalf(), Regression(21), FLIP)(x)[0, 0, 0], torch.tensor(1.0))


@pytest.mark.parametrize("shape, channels, memory_format", [
    ((4, 8, 9, 9), 8, torch.contiguous_format),
    ((4, 8, 9, 9), 8, torch.channels_last),
    ((4, 16), 1, torch.contiguous_format),
])
def test_fast_prelu_gives_the_gradients_of_torch_prelu(shape, channels, memory_format):
    x = torch.randn(shape, dtype=torch.float64)
    x.view(-1)[::7] = 0.0  # the kink: slope there is the weight's, as in aten
    x = x.contiguous(memory_format=memory_format) if x.dim() == 4 else x
    grad = torch.randn(shape, dtype=torch.float64)
    results = []
    for module in (torch.nn.PReLU(channels), PReLU(channels)):
        module = module.double()
        with torch.no_grad():
            module.weight.copy_(torch.linspace(-0.5, 0.75, channels))
        xi = x.clone().requires_grad_()
        out = module(xi)
        out.backward(grad)
        results.append((out.detach(), xi.grad, module.weight.grad))
    for ours, theirs in zip(results[1], results[0]):
        torch.testing.assert_close(ours, theirs)


def test_fast_prelu_passes_gradcheck_and_respects_a_frozen_weight():
    module = PReLU(3).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))
    module.weight.requires_grad_(False)
    module(x).sum().backward()
    assert module.weight.grad is None and x.grad is not None


@pytest.mark.parametrize("size", [112, 97])  # pools meet even and odd sides
def test_runtime_forms_of_prelu_and_pooling_give_the_same_points(size):
    from landmarks.inference.export import EdgePaddedAvgPool, PReLUForRuntime, for_runtime
    torch.manual_seed(0)
    net = build_net("stage1_wide", num_points=21, size=size, classify=True).eval()
    for module in net.modules():  # slopes unlike the default 0.25, negative ones included
        if isinstance(module, torch.nn.PReLU):
            module.weight.data.uniform_(-0.5, 1.5)
    model = InferenceModel(net, Regression(21), flip_permutation=FLIP)
    rewritten = for_runtime(model)
    kinds = {type(m) for m in rewritten.modules()}
    assert PReLUForRuntime in kinds and EdgePaddedAvgPool in kinds and torch.nn.PReLU not in kinds
    assert any(isinstance(m, torch.nn.PReLU) for m in model.modules())  # the original is left alone
    x = torch.rand(3, 1, size, size)
    with torch.no_grad():
        (points, prob), (points2, prob2) = model(x), rewritten(x)
    assert torch.allclose(points, points2, atol=1e-5) and torch.allclose(prob, prob2, atol=1e-5)


@pytest.mark.parametrize("name", ["stage1_wide", "faces"])
def test_folding_batch_norm_into_the_convolutions_keeps_the_outputs(name):
    from landmarks.net.faces import FACE_NETS
    from landmarks.net.faces import fuse_batch_norm
    torch.manual_seed(0)
    net = FACE_NETS[name]() if name in FACE_NETS else build_net(name, num_points=21, size=112, classify=True)
    for module in net.modules():  # statistics unlike the fresh ones, so folding them matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.rand(2, 3 if name in FACE_NETS else 1, 112, 112)
    with torch.no_grad():
        before = net(x)
        fused = fuse_batch_norm(net)
        after = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for key in ("points", "face_logits") if "points" in before else ("heat", "size", "offset"):
        torch.testing.assert_close(after[key], before[key], atol=1e-4, rtol=1e-4)


def test_point_attention_mixes_the_points_and_keeps_their_order():
    from landmarks.net.layers import PointAttention
    torch.manual_seed(0)
    attention = PointAttention(16, key_dim=8)
    torch.nn.init.normal_(attention.out.weight)  # a trained layer's output, not its start
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        out = attention(x)
        order = torch.tensor([3, 0, 4, 1, 2])
        # No position is encoded: a point is known by its vector, so reordering the points reorders the output.
        torch.testing.assert_close(attention(x[:, order]), out[:, order])
        moved = x.clone()
        moved[:, 0] += 1.0
        changed = (attention(moved) - out).abs().amax(dim=2)
    assert (changed[:, 1:] > 1e-4).all()  # every other point reads the one that moved


def test_point_attention_starts_as_the_identity():
    from landmarks.net.layers import PointAttention
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(PointAttention(16, key_dim=8)(x), x)
