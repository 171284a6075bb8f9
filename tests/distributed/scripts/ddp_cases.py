"""What the DDP scripts and tests/distributed/test_ddp.py share: the models, the global batches,
the loss, and how a global batch is split over ranks (so the test can compute one process's
answer on the concatenated batch)."""

import numpy as np

import minidl
from minidl import nn

SPLITS = {"even": (3, 3), "uneven": (4, 3)}  # samples per rank; 7 = 4 + 3


class ConvNet(nn.Module):
    """A small conv net with a Linear head: (N, 2, 6, 6) -> (N, 3)."""

    def __init__(self, batch_norm=False):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(4, 3, 3, stride=2, padding=1)
        self.head = nn.Linear(3 * 3 * 3, 3)

    def forward(self, x):
        h = self.bn(self.conv1(x)).relu()
        h = self.conv2(h).tanh()
        return self.head(h.flatten(1))


class WithUnused(nn.Module):
    """``unused`` takes no part in forward."""

    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 2)
        self.unused = nn.Linear(4, 2)

    def forward(self, x):
        return self.used(x)


def make_model(kind, seed):
    minidl.manual_seed(seed)
    if kind == "convnet":
        model = ConvNet()
    elif kind == "convnet_bn":
        model = ConvNet(batch_norm=True)
    elif kind == "unet":
        from unet.models import UNet
        model = UNet(in_channels=2, n_classes=2, base_channels=2, depth=2, padding="same")
    elif kind == "unet_bn":
        from unet.models import UNet
        model = UNet(in_channels=2, n_classes=2, base_channels=2, depth=2, padding="same", batch_norm=True)
    elif kind == "unused":
        model = WithUnused()
    else:
        raise ValueError(kind)
    return model.double()


def input_shape(kind):
    return {"unet": (2, 8, 8), "unet_bn": (2, 8, 8), "unused": (4,)}.get(kind, (2, 6, 6))


def global_batch(kind, n, step=0):
    """The global batch of ``step``: x (n, *input_shape) and a target like the model's output."""
    rng = np.random.default_rng(1000 + step)
    x = rng.standard_normal((n,) + input_shape(kind))
    return x


def loss_fn(output, target_seed=7):
    """A mean-over-samples loss with a fixed random target per output entry shape."""
    rng = np.random.default_rng(target_seed)
    target = minidl.tensor(rng.standard_normal(output.shape[1:]), device=output.device)
    return ((output - target) ** 2).mean()


def shard(x, split, rank):
    """Rank ``rank``'s rows of the global batch ``x`` (the first split[0] rows go to rank 0)."""
    start = sum(split[:rank])
    return x[start:start + split[rank]]


def named_grads(model):
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters() if p.grad is not None}


def named_params(model):
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
