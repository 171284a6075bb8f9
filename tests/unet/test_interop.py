"""PyTorch interop: twins built in PyTorch, weights copied across, same outputs and gradients.

The twins below are written from the papers and from the two popular PyTorch code bases
whose names we support: milesial/Pytorch-UNet (our U-Net tree; with padding="same",
batch_norm=True it IS that model) and wkentaro/pytorch-fcn (flat FCN names, mapping
"pytorch-fcn").
"""
import numpy as np
import pytest

import minidl
from unet import FCN, UNet
from unet.interop import export_torch_state_dict, load_torch_state_dict, torch_names


# ----------------------------------------------------------------------------- torch twins
def torch_unet(torch, in_channels=1, n_classes=2, base_channels=64, depth=5, padding="valid",
               batch_norm=False, up_mode="transpose"):
    """A PyTorch U-Net with our module tree (milesial/Pytorch-UNet's names)."""
    tnn = torch.nn
    pad = 0 if padding == "valid" else 1

    class DoubleConv(tnn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            layers = []
            for c in (c_in, c_out):
                layers.append(tnn.Conv2d(c, c_out, 3, padding=pad, bias=not batch_norm))
                if batch_norm:
                    layers.append(tnn.BatchNorm2d(c_out))
                layers.append(tnn.ReLU())
            self.double_conv = tnn.Sequential(*layers)

        def forward(self, x):
            return self.double_conv(x)

    class Down(tnn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.maxpool_conv = tnn.Sequential(tnn.MaxPool2d(2), DoubleConv(c_in, c_out))

        def forward(self, x):
            return self.maxpool_conv(x)

    class Up(tnn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            if up_mode == "transpose":
                self.up = tnn.ConvTranspose2d(c_in, c_in // 2, 2, stride=2)
            else:
                self.up = tnn.Sequential(tnn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                         tnn.Conv2d(c_in, c_in // 2, 1))
            self.conv = DoubleConv(c_in, c_out)

        def forward(self, x, skip):
            x = self.up(x)
            h, w = x.shape[-2:]
            top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
            return self.conv(torch.cat([skip[:, :, top:top + h, left:left + w], x], dim=1))

    class OutConv(tnn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv = tnn.Conv2d(c_in, c_out, 1)

        def forward(self, x):
            return self.conv(x)

    class TorchUNet(tnn.Module):
        def __init__(self):
            super().__init__()
            ch = [base_channels * 2 ** i for i in range(depth)]
            self.inc = DoubleConv(in_channels, ch[0])
            for i in range(1, depth):
                setattr(self, f"down{i}", Down(ch[i - 1], ch[i]))
            for i in range(1, depth):
                setattr(self, f"up{i}", Up(ch[depth - i], ch[depth - i - 1]))
            self.outc = OutConv(ch[0], n_classes)

        def forward(self, x):
            skips = [self.inc(x)]
            for i in range(1, depth):
                skips.append(getattr(self, f"down{i}")(skips[-1]))
            x = skips.pop()
            for i in range(1, depth):
                x = getattr(self, f"up{i}")(x, skips.pop())
            return self.outc.conv(x)

    return TorchUNet()


def torch_fcn_flat(torch, n_classes, variant, in_channels, width):
    """wkentaro/pytorch-fcn's FCN32s/16s/8s layout: flat attribute names, explicit crops."""
    tnn = torch.nn

    def ch(c):
        return max(1, int(round(c * width)))

    class TorchFCN(tnn.Module):
        def __init__(self):
            super().__init__()
            c_in = in_channels
            for block, n_convs, c_out in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
                for k in range(1, n_convs + 1):
                    setattr(self, f"conv{block}_{k}",
                            tnn.Conv2d(c_in, ch(c_out), 3, padding=100 if (block, k) == (1, 1) else 1))
                    c_in = ch(c_out)
            self.fc6 = tnn.Conv2d(c_in, ch(4096), 7)
            self.fc7 = tnn.Conv2d(ch(4096), ch(4096), 1)
            self.score_fr = tnn.Conv2d(ch(4096), n_classes, 1)
            def up(f):
                return tnn.ConvTranspose2d(n_classes, n_classes, 2 * f, stride=f, bias=False)

            if variant == "32s":
                self.upscore = up(32)
            else:
                self.score_pool4 = tnn.Conv2d(ch(512), n_classes, 1)
                self.upscore2 = up(2)
                if variant == "16s":
                    self.upscore16 = up(16)
                else:
                    self.score_pool3 = tnn.Conv2d(ch(256), n_classes, 1)
                    self.upscore_pool4 = up(2)
                    self.upscore8 = up(8)

        def forward(self, x):
            relu, pool = torch.relu, lambda h: torch.nn.functional.max_pool2d(h, 2, 2, ceil_mode=True)
            h = x
            for block, n_convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
                for k in range(1, n_convs + 1):
                    h = relu(getattr(self, f"conv{block}_{k}")(h))
                h = pool(h)
                if block == 3:
                    pool3 = h
                if block == 4:
                    pool4 = h
            h = self.score_fr(relu(self.fc7(relu(self.fc6(h)))))   # eval mode: no dropout
            H, W = x.shape[-2:]
            if variant == "32s":
                return self.upscore(h)[:, :, 19:19 + H, 19:19 + W]
            h = self.upscore2(h)
            h = h + self.score_pool4(pool4)[:, :, 5:5 + h.shape[2], 5:5 + h.shape[3]]
            if variant == "16s":
                return self.upscore16(h)[:, :, 27:27 + H, 27:27 + W]
            h = self.upscore_pool4(h)
            h = h + self.score_pool3(pool3)[:, :, 9:9 + h.shape[2], 9:9 + h.shape[3]]
            return self.upscore8(h)[:, :, 31:31 + H, 31:31 + W]

    return TorchFCN()


# ----------------------------------------------------------------------------- helpers
def _close(ours, theirs, what, rtol, floor):
    """|ours - theirs| <= rtol * |theirs| + floor * max|theirs|."""
    theirs = np.asarray(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=floor * max(np.abs(theirs).max(), 1e-30),
                               err_msg=what)


def _randomise_torch(torch, model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            shift = 0.05 if p.ndim == 1 else 0.0
            p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5 + shift)


# float32: outputs to 1e-5 relative. A float32 weight gradient is a sum over every pixel of
# the batch (conv1_2 of the FCN: ~80,000 terms that largely cancel), so it carries rounding
# error of about 1e-6..1e-5 of the tensor's largest entry whichever library computes it: the
# gradient floor is 1e-4 of that. float64: both libraries agree to ~1e-15, checked at 1e-10.
TOLERANCES = {"float32": dict(output=(1e-5, 1e-5), grad=(1e-5, 1e-4)),
              "float64": dict(output=(1e-10, 1e-12), grad=(1e-10, 1e-12))}


def _compare_forward_backward(torch, ours, theirs, x, mapping=None):
    """Same output, then the same gradient for every parameter after one backward: in float32,
    then again with both models converted to float64."""
    names = torch_names(ours, mapping)
    for dtype in ("float32", "float64"):
        if dtype == "float64":
            ours.double()
            theirs.double()
        tol = TOLERANCES[dtype]
        xd = x.astype(dtype)
        y = ours(minidl.tensor(xd))
        y_ref = theirs(torch.from_numpy(xd))
        _close(y.detach().numpy(), y_ref.detach().numpy(), f"{dtype} output", *tol["output"])
        dy = np.random.default_rng(7).standard_normal(y.shape).astype(dtype)
        ours.zero_grad()
        theirs.zero_grad()
        (y * minidl.tensor(dy)).sum().backward()
        (y_ref * torch.from_numpy(dy)).sum().backward()
        their_params = dict(theirs.named_parameters())
        assert len(their_params) == len(list(ours.parameters()))
        for name, p in ours.named_parameters():
            ref = their_params[names[name]].grad
            _close(p.grad.numpy(), ref.numpy(), f"{dtype} gradient of {name}", *tol["grad"])


# ----------------------------------------------------------------------------- U-Net
def test_paper_unet_parameter_count_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = UNet(), torch_unet(torch)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    assert n_ours == n_theirs == 31_030_658
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("config", [
    dict(padding="valid", batch_norm=False, up_mode="transpose"),     # the paper
    dict(padding="same", batch_norm=True, up_mode="transpose"),       # milesial/Pytorch-UNet
    dict(padding="valid", batch_norm=False, up_mode="bilinear"),
], ids=["paper", "milesial", "bilinear"])
def test_unet_matches_torch_twin(config):
    torch = pytest.importorskip("torch")
    ours = UNet(in_channels=2, n_classes=3, base_channels=4, depth=3, **config)
    theirs = torch_unet(torch, in_channels=2, n_classes=3, base_channels=4, depth=3, **config)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in export_torch_state_dict(ours).items()})
    size = ours.valid_input_size(30)
    x = np.random.default_rng(0).standard_normal((2, 2, size, size + 8)).astype(np.float32)
    _compare_forward_backward(torch, ours, theirs, x)
    if config["batch_norm"]:     # the running statistics moved alike (after a float32 update)
        theirs_state = theirs.state_dict()
        for name, value in ours.state_dict().items():
            if "running" in name:
                _close(value.numpy(), theirs_state[name].numpy(), name, 1e-5, 1e-5)


def test_unet_loads_torch_weights():
    torch = pytest.importorskip("torch")
    theirs = torch_unet(torch, in_channels=1, n_classes=2, base_channels=3, depth=3, padding="same",
                        batch_norm=True)
    _randomise_torch(torch, theirs)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    theirs.eval()
    ours = UNet(in_channels=1, n_classes=2, base_channels=3, depth=3, padding="same", batch_norm=True).eval()
    missing, unexpected = load_torch_state_dict(ours, theirs.state_dict())
    assert missing == [] and unexpected == []
    x = np.random.default_rng(1).standard_normal((1, 1, 16, 24)).astype(np.float32)
    _close(ours(minidl.tensor(x)).detach().numpy(), theirs(torch.from_numpy(x)).detach().numpy(), "output",
           1e-5, 1e-5)
    assert int(ours.inc.double_conv[1].num_batches_tracked.item()) == 7


def test_milesial_names():
    names = list(UNet(base_channels=1, padding="same", batch_norm=True).state_dict())
    for key in ("inc.double_conv.0.weight", "inc.double_conv.1.running_var",
                "down1.maxpool_conv.1.double_conv.3.weight", "down4.maxpool_conv.1.double_conv.4.bias",
                "up1.up.weight", "up1.up.bias", "up4.conv.double_conv.4.num_batches_tracked",
                "outc.conv.weight", "outc.conv.bias"):
        assert key in names
    assert "inc.double_conv.0.bias" not in names          # bias-free before batch norm


# ----------------------------------------------------------------------------- FCN
@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_fcn_matches_pytorch_fcn(variant):
    torch = pytest.importorskip("torch")
    theirs = torch_fcn_flat(torch, n_classes=3, variant=variant, in_channels=2, width=1 / 16)
    _randomise_torch(torch, theirs)
    ours = FCN(n_classes=3, variant=variant, in_channels=2, width=1 / 16).eval()
    load_torch_state_dict(ours, theirs.state_dict(), mapping="pytorch-fcn")
    x = np.random.default_rng(2).standard_normal((2, 2, 13, 18)).astype(np.float32)
    _compare_forward_backward(torch, ours, theirs, x, mapping="pytorch-fcn")
    assert set(export_torch_state_dict(ours, "pytorch-fcn")) == set(theirs.state_dict())


# ----------------------------------------------------------------------------- files, dicts, errors
def test_pth_file_round_trip(tmp_path):
    pytest.importorskip("torch")
    model = UNet(base_channels=2, depth=2, batch_norm=True)
    path = tmp_path / "unet.pth"
    export_torch_state_dict(model, path=path)
    fresh = UNet(base_channels=2, depth=2, batch_norm=True)
    load_torch_state_dict(fresh, path)
    load_torch_state_dict(fresh, str(path))
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_dict_of_arrays_round_trip_and_copies():
    model = FCN(n_classes=2, variant="16s", width=1 / 32)
    exported = export_torch_state_dict(model, mapping="pytorch-fcn")
    assert "conv1_1.weight" in exported and "fc6.bias" in exported and "upscore16.weight" in exported
    exported["conv1_1.weight"] += 1.0                        # a copy: the model does not change
    assert not np.allclose(exported["conv1_1.weight"], model.block1.conv1_1.weight.detach().numpy())
    fresh = FCN(n_classes=2, variant="16s", width=1 / 32)
    load_torch_state_dict(fresh, exported, mapping="pytorch-fcn")
    np.testing.assert_array_equal(fresh.block1.conv1_1.weight.detach().numpy(), exported["conv1_1.weight"])


def test_dict_and_function_mappings():
    model = UNet(base_channels=1, depth=2)
    rename = {"outc.conv.weight": "head.weight", "outc.conv.bias": "head.bias"}
    exported = export_torch_state_dict(model, mapping=rename)
    assert "head.weight" in exported and "inc.double_conv.0.weight" in exported
    load_torch_state_dict(UNet(base_channels=1, depth=2), exported, mapping=rename)
    prefixed = export_torch_state_dict(model, mapping=lambda name: "module." + name)
    assert all(k.startswith("module.") for k in prefixed)
    load_torch_state_dict(UNet(base_channels=1, depth=2), prefixed, mapping=lambda name: "module." + name)


def test_mismatches_are_clear_errors_and_change_nothing():
    model = UNet(base_channels=1, depth=2)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = export_torch_state_dict(UNet(base_channels=1, depth=2))
    missing = dict(state)
    del missing["outc.conv.bias"]
    with pytest.raises(RuntimeError, match=r"missing: \['outc.conv.bias'\]"):
        load_torch_state_dict(model, missing)
    extra = dict(state, **{"outc.conv.scale": np.ones(1)})
    with pytest.raises(RuntimeError, match=r"unexpected: \['outc.conv.scale'\]"):
        load_torch_state_dict(model, extra)
    wrong = dict(state, **{"outc.conv.bias": np.zeros(5)})
    with pytest.raises(RuntimeError, match="size mismatch for outc.conv.bias"):
        load_torch_state_dict(model, wrong)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    with pytest.raises(TypeError, match="not an array"):
        load_torch_state_dict(model, dict(state, **{"outc.conv.bias": [0.0, 0.0]}))
    with pytest.raises(ValueError, match="unknown mapping"):
        export_torch_state_dict(model, mapping="caffe")
    with pytest.raises(ValueError, match="several of our names"):
        export_torch_state_dict(model, mapping=lambda name: "same")
    loaded = load_torch_state_dict(model, missing, strict=False)
    assert loaded == (["outc.conv.bias"], [])
