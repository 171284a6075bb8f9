"""PyTorch twins of the seed models (unet/zhixuhao.py, tf_unet.py, bn_unet.py, mini_unet.py,
resnet34_unet.py, fcn.py), each written in torch.nn from the model's recipe with minidl's
module names, so that ``unet.interop.export_torch_state_dict(model)`` loads into it by name.

One copy, shared by the float64 twin tests (tests/unet/test_<model>.py) and by
``python -m benchmarks.models``. Every builder takes the ``torch`` module as its first
argument and this module never imports torch itself, so the tests import it at module level
and still run their PyTorch-free checks where PyTorch is not installed. (The paper U-Net's
twin, which imports torch, is benchmarks/_torch_unet.py.)
"""
from collections import OrderedDict

__all__ = ["torch_zhixuhao", "torch_tf_unet", "torch_tf_unet_cost", "torch_bn_unet",
           "torch_mini_unet", "torch_unet34", "torch_fcn"]


def torch_zhixuhao(torch, in_channels, n_classes, width, up, dropout):
    """The Keras model written in PyTorch with our module names; the 'upsample' branch uses
    PyTorch's own padding='same' (for an even kernel it also pads 0 before and 1 after)."""
    tnn = torch.nn

    def double(ci, co):
        return tnn.Sequential(tnn.Conv2d(ci, co, 3, padding=1), tnn.ReLU(),
                              tnn.Conv2d(co, co, 3, padding=1), tnn.ReLU())

    def upb(c):
        if up == "transpose":
            return tnn.Sequential(tnn.ConvTranspose2d(c, c // 2, 2, stride=2), tnn.ReLU())
        return tnn.Sequential(tnn.Upsample(scale_factor=2, mode="nearest"), tnn.Identity(),
                              tnn.Conv2d(c, c // 2, 2, padding="same"), tnn.ReLU())

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            c = [width * 2 ** i for i in range(5)]
            self.conv1, self.conv2 = double(in_channels, c[0]), double(c[0], c[1])
            self.conv3, self.conv4 = double(c[1], c[2]), double(c[2], c[3])
            self.drop4 = tnn.Dropout(dropout)
            self.conv5 = double(c[3], c[4])
            self.drop5 = tnn.Dropout(dropout)
            self.up6, self.conv6 = upb(c[4]), double(c[4], c[3])
            self.up7, self.conv7 = upb(c[3]), double(c[3], c[2])
            self.up8, self.conv8 = upb(c[2]), double(c[2], c[1])
            self.up9, self.conv9 = upb(c[1]), double(c[1], c[0])
            self.head = tnn.Sequential(tnn.Conv2d(c[0], 2, 3, padding=1), tnn.ReLU(), tnn.Conv2d(2, n_classes, 1))

        def forward(self, x):
            pool = lambda t: torch.nn.functional.max_pool2d(t, 2)  # noqa: E731
            c1 = self.conv1(x)
            c2 = self.conv2(pool(c1))
            c3 = self.conv3(pool(c2))
            d4 = self.drop4(self.conv4(pool(c3)))
            d5 = self.drop5(self.conv5(pool(d4)))
            x = self.conv6(torch.cat([d4, self.up6(d5)], 1))
            x = self.conv7(torch.cat([c3, self.up7(x)], 1))
            x = self.conv8(torch.cat([c2, self.up8(x)], 1))
            x = self.conv9(torch.cat([c1, self.up9(x)], 1))
            return self.head(x)

    return Twin()


def torch_tf_unet(torch, in_channels, n_classes, width, layers, filter_size, keep_prob):
    """create_conv_net written in PyTorch with our module names."""
    tnn = torch.nn

    def block(ci, co):
        return tnn.Sequential(tnn.Conv2d(ci, co, filter_size), tnn.Dropout(1 - keep_prob), tnn.ReLU(),
                              tnn.Conv2d(co, co, filter_size), tnn.Dropout(1 - keep_prob), tnn.ReLU())

    class Up(tnn.Module):
        def __init__(self, f):
            super().__init__()
            self.deconv = tnn.Sequential(tnn.ConvTranspose2d(f, f // 2, 2, stride=2), tnn.ReLU())
            self.conv = block(f, f // 2)

        def forward(self, x, skip):
            x = self.deconv(x)
            h, w = x.shape[-2:]
            top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
            return self.conv(torch.cat([skip[:, :, top:top + h, left:left + w], x], 1))

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            c = in_channels
            for i in range(layers):
                setattr(self, f"down_conv_{i}", block(c, 2 ** i * width))
                c = 2 ** i * width
            for i in range(layers - 2, -1, -1):
                setattr(self, f"up_conv_{i}", Up(2 ** (i + 1) * width))
            self.output_map = tnn.Conv2d(width, n_classes, 1)

        def forward(self, x):
            skips = []
            for i in range(layers):
                x = getattr(self, f"down_conv_{i}")(x)
                skips.append(x)
                if i < layers - 1:
                    x = torch.nn.functional.max_pool2d(x, 2)
            for i in range(layers - 2, -1, -1):
                x = getattr(self, f"up_conv_{i}")(x, skips[i])
            return torch.relu(self.output_map(x))

    return Twin()


def torch_tf_unet_cost(torch, cost, class_weights):
    """tf_unet's _get_cost in PyTorch, on class-index labels cropped like util.crop_to_shape."""
    def loss(logits, target):
        n_class, (h, w) = logits.shape[1], logits.shape[-2:]
        oy, ox = (target.shape[-2] - h) // 2, (target.shape[-1] - w) // 2
        y = torch.nn.functional.one_hot(target[:, oy:oy + h, ox:ox + w], n_class).to(logits.dtype)
        flat_logits, flat_labels = logits.permute(0, 2, 3, 1).reshape(-1, n_class), y.reshape(-1, n_class)
        if cost == "dice_coefficient":
            p = torch.softmax(flat_logits, 1)
            return -(2 * (p * flat_labels).sum() / (1e-5 + p.sum() + flat_labels.sum()))
        loss_map = -(flat_labels * torch.log_softmax(flat_logits, 1)).sum(1)
        if class_weights is not None:
            loss_map = loss_map * (flat_labels * torch.tensor(class_weights, dtype=logits.dtype)).sum(1)
        return loss_map.mean()
    return loss


def torch_bn_unet(torch, in_channels, n_classes, width, depth):
    tnn = torch.nn

    def cbr(ci, co, stride=1):
        return [tnn.Conv2d(ci, co, 3, stride=stride, padding=1), tnn.BatchNorm2d(co), tnn.ReLU()]

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            c = [width * 2 ** i for i in range(depth)]
            for i in range(1, depth + 1):
                ci = in_channels if i == 1 else c[i - 2]
                setattr(self, f"enc{i}", tnn.Sequential(*cbr(ci, c[i - 1]), *cbr(c[i - 1], c[i - 1])))
                if i < depth:
                    setattr(self, f"down{i}", tnn.Sequential(*cbr(c[i - 1], c[i - 1], 2)))
            for i in range(depth - 1, 0, -1):
                setattr(self, f"up{i}", tnn.Sequential(
                    tnn.ConvTranspose2d(c[i], c[i - 1], 3, stride=2, padding=1, output_padding=1),
                    tnn.BatchNorm2d(c[i - 1]), tnn.ReLU()))
                setattr(self, f"dec{i}", tnn.Sequential(*cbr(2 * c[i - 1], c[i - 1]), *cbr(c[i - 1], c[i - 1])))
            self.head = tnn.Conv2d(c[0], n_classes, 1)

        def forward(self, x):
            skips = []
            for i in range(1, depth + 1):
                x = getattr(self, f"enc{i}")(x)
                if i < depth:
                    skips.append(x)
                    x = getattr(self, f"down{i}")(x)
            for i in range(depth - 1, 0, -1):
                x = getattr(self, f"dec{i}")(torch.cat([skips[i - 1], getattr(self, f"up{i}")(x)], 1))
            return self.head(x)

    return Twin()


def torch_mini_unet(torch, in_channels, n_classes, width, dropout):
    tnn = torch.nn

    def block(ci, co):
        return tnn.Sequential(tnn.Conv2d(ci, co, 3, padding=1), tnn.ReLU(), tnn.Dropout(dropout),
                              tnn.Conv2d(co, co, 3, padding=1), tnn.ReLU())

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.conv1, self.conv2, self.conv3 = block(in_channels, w), block(w, 2 * w), block(2 * w, 4 * w)
            self.conv4, self.conv5 = block(6 * w, 2 * w), block(3 * w, w)
            self.out = tnn.Conv2d(w, n_classes, 1)

        def forward(self, x):
            pool = lambda t: torch.nn.functional.max_pool2d(t, 2)  # noqa: E731
            up = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
            c1 = self.conv1(x)
            c2 = self.conv2(pool(c1))
            c3 = self.conv3(pool(c2))
            x = self.conv4(torch.cat([up(c3), c2], 1))
            x = self.conv5(torch.cat([up(x), c1], 1))
            return self.out(x)

    return Twin()


def torch_unet34(torch, in_channels=3, n_classes=1, width=1.0, dropout=0.0):
    """The article's Unet34 in PyTorch, with torchvision's ResNet34 structure written out (no
    torchvision import) and the skip features taken by forward hooks, as in the article."""
    tnn, tF = torch.nn, torch.nn.functional

    def ch(c):
        return max(1, int(round(c * width)))

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c_out)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = tnn.Sequential(tnn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                                  tnn.BatchNorm2d(c_out))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Encoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(in_channels, ch(64), 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(ch(64))
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            c = ch(64)
            for i, (n, c_out) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
                blocks = [Block(c, ch(c_out), 1 if i == 0 else 2)]
                blocks += [Block(ch(c_out), ch(c_out), 1) for _ in range(n - 1)]
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
                c = ch(c_out)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    class Save:
        def __init__(self, m):
            self.hook = m.register_forward_hook(self.fn)

        def fn(self, module, inputs, output):
            self.features = output

    class UBlock(tnn.Module):
        def __init__(self, up_in, x_in, n_out):
            super().__init__()
            self.x_conv = tnn.Conv2d(x_in, n_out // 2, 1)
            self.tr_conv = tnn.ConvTranspose2d(up_in, n_out // 2, 2, stride=2)
            self.bn = tnn.BatchNorm2d(n_out)

        def forward(self, up_p, x_p):
            return self.bn(tF.relu(torch.cat([self.tr_conv(up_p), self.x_conv(x_p)], dim=1)))

    class Unet34(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()
            e, d = self.encoder, 2 * ch(128)
            self.sfs = [Save(m) for m in (e.relu, e.layer1, e.layer2, e.layer3)]
            self.dropout = tnn.Dropout(dropout) if dropout else tnn.Identity()
            self.up1 = UBlock(ch(512), ch(256), d)
            self.up2 = UBlock(d, ch(128), d)
            self.up3 = UBlock(d, ch(64), d)
            self.up4 = UBlock(d, ch(64), d)
            self.up5 = tnn.ConvTranspose2d(d, n_classes, 2, stride=2)

        def forward(self, x):
            x = self.dropout(tF.relu(self.encoder(x)))
            x = self.up1(x, self.sfs[3].features)
            x = self.up2(x, self.sfs[2].features)
            x = self.up3(x, self.sfs[1].features)
            x = self.up4(x, self.sfs[0].features)
            return self.up5(x)

    return Unet34()


def torch_fcn(torch, n_classes, variant, width, in_channels=3):
    """FCN with our module names (block1..block5, fc), the paper's crop offsets written out."""
    tnn = torch.nn

    def ch(c):
        return max(1, int(round(c * width)))

    class TorchFCN(tnn.Module):
        def __init__(self):
            super().__init__()
            c_in = in_channels
            for block, n_convs, c_out in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
                layers = OrderedDict()
                for k in range(1, n_convs + 1):
                    layers[f"conv{block}_{k}"] = tnn.Conv2d(c_in, ch(c_out), 3, padding=100 if block == k == 1 else 1)
                    layers[f"relu{block}_{k}"] = tnn.ReLU()
                    c_in = ch(c_out)
                layers[f"pool{block}"] = tnn.MaxPool2d(2, 2, ceil_mode=True)
                setattr(self, f"block{block}", tnn.Sequential(layers))
            f = ch(4096)
            self.fc = tnn.Sequential(OrderedDict([
                ("fc6", tnn.Conv2d(c_in, f, 7)), ("relu6", tnn.ReLU()), ("drop6", tnn.Dropout()),
                ("fc7", tnn.Conv2d(f, f, 1)), ("relu7", tnn.ReLU()), ("drop7", tnn.Dropout())]))
            self.score_fr = tnn.Conv2d(f, n_classes, 1)

            def up(s):
                return tnn.ConvTranspose2d(n_classes, n_classes, 2 * s, stride=s, bias=False)
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
            H, W = x.shape[-2:]
            pool3 = self.block3(self.block2(self.block1(x)))
            pool4 = self.block4(pool3)
            h = self.score_fr(self.fc(self.block5(pool4)))
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
