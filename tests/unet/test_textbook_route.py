"""Under ``conv_algorithm("im2col")`` a U-Net training step runs the textbook convolution only
(docs/gradients/conv2d.md: dweight from the columns, dx = col2im), and its gradients are
PyTorch's in float64."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import record_calls
from minidl.backend import conv_algorithm, kernels_for
from minidl.ops import conv_algorithms
from unet import UNet
from unet.interop import export_torch_state_dict

FAST_KERNELS = ("stack_shifted_rows", "direct_conv2d", "direct_conv2d_dweight", "winograd_input_tiles", "winograd_input_tiles_adjoint",
                "winograd_output_tiles", "winograd_output_tiles_adjoint")


def _count_routes(monkeypatch):
    """{route name: Functions it created}: every conv2d route's ``apply``, counted."""
    counts = {name: 0 for name in conv_algorithms.ROUTES}
    for name, route in conv_algorithms.ROUTES.items():
        original = route.apply.__func__

        def counting(cls, *args, _name=name, _original=original):
            if cls is conv_algorithms.ROUTES[_name]:
                counts[_name] += 1
            return _original(cls, *args)

        monkeypatch.setattr(route, "apply", classmethod(counting))
    return counts


def _step(model, x, target):
    """The step's loss and every parameter's gradient (float64)."""
    loss = F.cross_entropy(model(x), target)
    model.zero_grad()
    loss.backward()
    return loss.item(), {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


def _unet(padding):
    minidl.manual_seed(0)
    model = UNet(in_channels=1, n_classes=2, base_channels=16, depth=3, padding=padding, batch_norm=True)
    return model.double()


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_a_unet_step_under_im2col_runs_only_the_textbook_route(monkeypatch, padding):
    model = _unet(padding)
    size = model.valid_input_size(40)
    rng = np.random.default_rng(1)
    x = minidl.tensor(rng.standard_normal((2, 1, size, size)))
    out = model.output_size(size)
    target = minidl.tensor(rng.integers(0, 2, (2, out, out)))
    kern = kernels_for(x._data)
    calls = {name: record_calls(monkeypatch, kern, name) for name in ("im2col", "col2im") + FAST_KERNELS
             if hasattr(kern, name)}
    routes = _count_routes(monkeypatch)
    with conv_algorithm("im2col"):
        _step(model, x, target)
    assert routes["im2col"] == 2 * 5 + 1  # two 3x3 convs in each of the 5 DoubleConvs, and the 1x1 head
    assert all(routes[name] == 0 for name in ("rotated_kernel", "shifted_rows", "winograd", "direct"))
    assert all(not calls[name] for name in FAST_KERNELS if name in calls)
    assert calls["im2col"] and calls["col2im"]  # dx by col2im: the textbook backward
    routes_auto = _count_routes(monkeypatch)
    _step(model, x, target)  # and without the switch, the kernel module's table chooses
    assert sum(routes_auto[name] for name in ("rotated_kernel", "shifted_rows", "winograd", "direct")) > 0


class _TorchUNet:
    """PyTorch's twin of ``UNet(..., batch_norm=True)`` (unet/parts.py), built in the test."""

    def __init__(self, torch, model):
        nn = torch.nn
        self.torch, self.model = torch, model

        def double_conv(c_in, c_out):
            pad = 1 if model.padding == "same" else 0
            layers = []
            for c in (c_in, c_out):
                layers += [nn.Conv2d(c, c_out, 3, padding=pad, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            return nn.Sequential(*layers)

        c = [model.base_channels * 2 ** i for i in range(model.depth)]
        root = nn.Module()
        root.inc = nn.Module()
        root.inc.double_conv = double_conv(model.in_channels, c[0])
        for i in range(1, model.depth):
            down = nn.Module()
            down.maxpool_conv = nn.Sequential(nn.MaxPool2d(2, 2), nn.Module())
            down.maxpool_conv[1].double_conv = double_conv(c[i - 1], c[i])
            root.add_module(f"down{i}", down)
            level = model.depth - 1 - i
            up = nn.Module()
            up.up = nn.ConvTranspose2d(c[level + 1], c[level + 1] // 2, 2, stride=2)
            up.conv = nn.Module()
            up.conv.double_conv = double_conv(c[level + 1], c[level])
            root.add_module(f"up{i}", up)
        root.outc = nn.Module()
        root.outc.conv = nn.Conv2d(c[0], model.n_classes, 1)
        root.double()
        state = {k: torch.from_numpy(v) for k, v in export_torch_state_dict(model).items()}
        root.load_state_dict(state, strict=True)
        self.root = root

    def __call__(self, x):
        r, depth = self.root, self.model.depth
        skips, x = [], r.inc.double_conv(x)
        for i in range(1, depth):
            skips.append(x)
            down = getattr(r, f"down{i}").maxpool_conv
            x = down[1].double_conv(down[0](x))
        for i, skip in zip(range(1, depth), reversed(skips)):
            up = getattr(r, f"up{i}")
            x = up.up(x)
            dh, dw = (skip.shape[-2] - x.shape[-2]) // 2, (skip.shape[-1] - x.shape[-1]) // 2
            skip = skip[..., dh:dh + x.shape[-2], dw:dw + x.shape[-1]]  # valid: the centre crop
            x = up.conv.double_conv(self.torch.cat([skip, x], dim=1))
        return r.outc.conv(x)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_the_textbook_step_gives_pytorch_s_gradients(torch, padding):
    model = _unet(padding)
    size = model.valid_input_size(36)
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((2, 1, size, size))
    out = model.output_size(size)
    t_np = rng.integers(0, 2, (2, out, out))
    twin = _TorchUNet(torch, model)
    with conv_algorithm("im2col"):
        loss, grads = _step(model, minidl.tensor(x_np), minidl.tensor(t_np))
    theirs = torch.nn.functional.cross_entropy(twin(torch.tensor(x_np)), torch.tensor(t_np))
    theirs.backward()
    assert abs(loss - theirs.item()) <= 1e-12 * abs(theirs.item())
    their_grads = dict(twin.root.named_parameters())
    assert set(grads) == set(their_grads)
    for name, g in grads.items():
        np.testing.assert_allclose(g, their_grads[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
