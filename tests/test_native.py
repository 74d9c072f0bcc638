"""The native kernels give PyTorch's values, build once, and step aside where they cannot run."""

import copy
import shutil

import pytest
import torch
import torch.nn.functional as F

from landmarks.net import native
from landmarks.net import ConvBlock, Stage1Net, conv_prelu_pool, prelu_backward_reference

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on this machine")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    kernels = native.build(tmp_path_factory.mktemp("native"))
    assert kernels.lib is not None, kernels.note
    return kernels.lib


@needs_compiler
def test_build_compiles_once_and_reuses_the_library(tmp_path):
    first = native.build(tmp_path)
    assert first.lib is not None and str(tmp_path) in first.note
    [library] = tmp_path.glob("native-*.so")
    stamp = library.stat().st_mtime_ns
    assert native.build(tmp_path).lib is not None
    assert [p.name for p in tmp_path.iterdir()] == [library.name]  # no second build, no temporary left
    assert library.stat().st_mtime_ns == stamp


def test_build_without_a_compiler_says_why(tmp_path):
    kernels = native.build(tmp_path, compiler=str(tmp_path / "no-such-cc"))
    assert kernels.lib is None
    assert "cannot run C compiler" in kernels.note and "no-such-cc" in kernels.note
    assert not list(tmp_path.glob("*.so"))


@needs_compiler
@pytest.mark.parametrize("shape,slopes", [((6, 8, 9, 9), 8), ((64, 8, 54, 54), 8), ((5, 16, 3, 3), 1),
                                          ((7, 128), 1), ((7, 40), 40)])
def test_prelu_backward_matches_tensor_ops(lib, shape, slopes):
    torch.manual_seed(0)
    memory_format = torch.channels_last if len(shape) == 4 else torch.contiguous_format
    x = torch.randn(shape).contiguous(memory_format=memory_format)
    grad = torch.randn(shape).contiguous(memory_format=memory_format)
    weight = torch.linspace(-0.5, 1.5, slopes)  # negative and above-one slopes too
    grad_x, grad_weight = native.prelu_backward(grad, x, weight, lib)
    want_x, want_weight = prelu_backward_reference(grad, x, weight)
    assert torch.equal(grad_x, want_x)
    assert grad_weight.shape == weight.shape
    torch.testing.assert_close(grad_weight, want_weight, rtol=1e-5, atol=1e-4)


@needs_compiler
def test_prelu_backward_declines_layouts_it_does_not_handle(lib):
    x = torch.randn(2, 8, 5, 5)  # NCHW: channels are not innermost
    assert native.prelu_backward(torch.randn_like(x), x, torch.full((8,), 0.25), lib) is None
    x64 = torch.randn(3, 8, dtype=torch.float64)
    assert native.prelu_backward(torch.randn_like(x64), x64, torch.full((8,), 0.25), lib) is None


def reference_layer(x, weight, bias, slope, stride):
    return F.avg_pool2d(F.prelu(F.conv2d(x, weight, bias, stride), slope), 2, ceil_mode=True)


@needs_compiler
@pytest.mark.parametrize("cin,cout,k,stride,size,slopes", [(1, 8, 5, 2, 112, 8), (3, 16, 5, 2, 40, 16),
                                                           (2, 8, 3, 1, 18, 1)])
def test_conv_prelu_pool_matches_pytorch(lib, cin, cout, k, stride, size, slopes):
    torch.manual_seed(1)
    x = torch.randn(5, cin, size, size)
    params = [torch.randn(cout, cin, k, k) * 0.3, torch.randn(cout) * 0.1, torch.linspace(-0.3, 1.2, slopes)]
    assert native.conv_prelu_pool_supported(x, params[0], stride)
    fused_params = [p.clone().requires_grad_() for p in params]
    plain_params = [p.clone().requires_grad_() for p in params]
    out = native.ConvPReLUPool.apply(x, *fused_params, stride, lib)
    want = reference_layer(x, *plain_params, stride)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(want)
    got = torch.autograd.grad(out, fused_params, grad_out)
    expected = torch.autograd.grad(want, plain_params, grad_out)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * e.abs().max().item())


@needs_compiler
@pytest.mark.parametrize("shape,slopes", [((3, 16, 23, 23), 16), ((3, 24, 8, 8), 24), ((2, 8, 5, 6), 1)])
def test_prelu_pool_matches_pytorch_ceil_mode_included(lib, shape, slopes):
    torch.manual_seed(3)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    slope = torch.linspace(-0.3, 1.2, slopes)
    assert native.prelu_pool_supported(x, slope)
    fused_in = [x.clone().requires_grad_(), slope.clone().requires_grad_()]
    plain_in = [x.clone().requires_grad_(), slope.clone().requires_grad_()]
    out = native.PReLUPool.apply(*fused_in, lib)
    want = F.avg_pool2d(F.prelu(*plain_in), 2, ceil_mode=True)
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    grad_out = torch.randn_like(want)
    for g, e in zip(torch.autograd.grad(out, fused_in, grad_out), torch.autograd.grad(want, plain_in, grad_out)):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_conv_prelu_pool_supports_only_what_the_kernel_computes():
    weight = torch.zeros(8, 1, 5, 5)
    assert native.conv_prelu_pool_supported(torch.zeros(2, 1, 112, 112), weight, 2)
    assert not native.conv_prelu_pool_supported(torch.zeros(2, 1, 113, 113), weight, 2)  # odd conv output
    assert not native.conv_prelu_pool_supported(torch.zeros(2, 1, 112, 96), weight, 2)  # not square
    assert not native.conv_prelu_pool_supported(torch.zeros(2, 1, 112, 112), torch.zeros(6, 1, 5, 5), 2)
    assert not native.conv_prelu_pool_supported(torch.zeros(2, 1, 112, 112, dtype=torch.float64), weight, 2)
    assert not native.conv_prelu_pool_supported(torch.zeros(2, 1, 112, 112, requires_grad=True), weight, 2)


def test_floor_mode_pooling_of_an_odd_size_takes_pytorch_ops():
    block, pool = ConvBlock(8, 8, 3, padding=1).train(), torch.nn.AvgPool2d(2)  # 7x7 -> 3x3, not 4x4
    x = torch.randn(2, 8, 7, 7, requires_grad=True).contiguous(memory_format=torch.channels_last)
    assert conv_prelu_pool(block, pool, x).shape == (2, 8, 3, 3)


def test_first_layer_falls_back_where_the_kernel_does_not_apply():
    net = Stage1Net(channels=1, size=113, num_points=21).train()  # 113 -> odd conv output: PyTorch's ops, ceil-mode pooling
    x = torch.randn(2, 1, 113, 113)
    assert torch.equal(conv_prelu_pool(net.conv1_1, net.pool1, x), net.pool1(net.conv1_1(x)))
    net.eval()  # inference always takes PyTorch's ops
    x = torch.randn(2, 1, 113, 113)
    with torch.no_grad():
        assert torch.equal(conv_prelu_pool(net.conv1_1, net.pool1, x), net.pool1(net.conv1_1(x)))


@needs_compiler
def test_training_with_and_without_native_kernels_agrees(monkeypatch):
    torch.manual_seed(2)
    fast = Stage1Net(channels=1, size=112, num_points=21).train()
    plain = copy.deepcopy(fast)
    images, targets = torch.randn(16, 1, 112, 112), torch.rand(16, 42)

    def train(model):
        # SGD: its steps are linear in the gradients, so float rounding cannot flip one (Adam can, near 0)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        for _ in range(3):
            optimizer.zero_grad()
            F.mse_loss(model(images)["points"], targets).backward()
            optimizer.step()

    assert native.kernels().lib is not None, native.kernels().note
    train(fast)
    monkeypatch.setattr(native, "kernels", lambda: native.Kernels(None, "off for the test"))
    train(plain)
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{name} differs")
