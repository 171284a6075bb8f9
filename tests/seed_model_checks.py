"""Checks shared by the seed models' tests (tests/unet/test_<model>.py): a PyTorch twin with
the same module tree, weights copied across by name, compared in float64 (outputs, loss,
every gradient, the parameters after the recipe's optimizer steps, BatchNorm buffers, eval
mode), and a small training run on synthetic cells."""
import numpy as np

import minidl
import minidl.functional as F
from unet.interop import export_torch_state_dict, torch_names
from unet.synthetic import make_cells

RTOL, FLOOR = 1e-10, 1e-12


def close(ours, theirs, what, rtol=RTOL, floor=FLOOR):
    """|ours - theirs| <= rtol * |theirs| + floor * max|theirs|."""
    theirs = np.asarray(theirs)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=rtol,
                               atol=floor * max(np.abs(theirs).max(), 1e-300), err_msg=what)


def optimizers(torch, recipe, ours, theirs):
    """The recipe's optimizer (``dict(optimizer="adam" | "sgd", lr=..., ...)``) for both."""
    kind, lr, wd = recipe["optimizer"], recipe["lr"], recipe.get("weight_decay", 0.0)
    if kind == "adam":
        return (minidl.optim.Adam(ours.parameters(), lr=lr, weight_decay=wd),
                torch.optim.Adam(theirs.parameters(), lr=lr, weight_decay=wd))
    assert kind == "sgd", recipe
    momentum = recipe.get("momentum", 0.0)
    return (minidl.optim.SGD(ours.parameters(), lr=lr, momentum=momentum, weight_decay=wd),
            torch.optim.SGD(theirs.parameters(), lr=lr, momentum=momentum, weight_decay=wd))


def standard_losses(torch, kind):
    """(ours, theirs): "bce" with logits on a 0/1 float target, "ce" on class indices."""
    if kind == "bce":
        return (lambda y, t: F.binary_cross_entropy_with_logits(y, t.to(y.dtype)),
                lambda y, t: torch.nn.functional.binary_cross_entropy_with_logits(y, t.to(y.dtype)))
    return (lambda y, t: F.cross_entropy(y, t),
            lambda y, t: torch.nn.functional.cross_entropy(y, t))


def fix_dropout_masks(torch, ours, theirs, seed=0):
    """Replace every Dropout's random mask by one drawn here, the same for the two models (by
    module name and call number), so that train mode with dropout compares exactly."""
    rng, masks = np.random.default_rng(seed), {}

    def mask(name, k, shape, p):
        key = (name, k, tuple(shape))
        if key not in masks:
            masks[key] = (rng.random(shape) >= p) / (1.0 - p)
        return masks[key]

    def patch(model, wrap):
        count = {}
        for name, module in model.named_modules():
            if type(module).__name__ == "Dropout" and module.p > 0:
                def forward(x, name=name, module=module):
                    if not module.training:
                        return x
                    count[name] = count.get(name, -1) + 1
                    return x * wrap(mask(name, count[name], x.shape, module.p))
                module.forward = forward
                count.setdefault(name, -1)
        return count

    patched_ours = patch(ours, minidl.tensor)
    patched_theirs = patch(theirs, torch.from_numpy)
    assert set(patched_ours) == set(patched_theirs)
    return sorted(patched_ours)


def compare_with_twin(torch, ours, theirs, x, target, recipe, losses, steps=2):
    """float64: outputs, loss and every gradient, then the parameters after each optimizer
    step, for ``steps`` steps in train mode; BatchNorm buffers; then eval mode."""
    ours.double()
    theirs.double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in export_torch_state_dict(ours).items()})
    names = torch_names(ours)
    their_params = dict(theirs.named_parameters())
    assert len(their_params) == len(list(ours.parameters()))
    opt, opt_ref = optimizers(torch, recipe, ours, theirs)
    loss_fn, loss_ref_fn = losses
    x64 = x.astype(np.float64)
    ours.train()
    theirs.train()
    for step in range(steps):
        y, y_ref = ours(minidl.tensor(x64)), theirs(torch.from_numpy(x64))
        close(y.detach().numpy(), y_ref.detach().numpy(), f"step {step}: output")
        loss = loss_fn(y, minidl.tensor(target))
        loss_ref = loss_ref_fn(y_ref, torch.from_numpy(target))
        close(loss.item(), loss_ref.item(), f"step {step}: loss")
        opt.zero_grad()
        opt_ref.zero_grad()
        loss.backward()
        loss_ref.backward()
        # Floor: 1e-12 of the largest gradient of the model, for gradients that are zero in
        # exact arithmetic (a conv bias right before BatchNorm) and rounding noise in both.
        scale = max(np.abs(p.grad.numpy()).max() for p in theirs.parameters())
        for name, p in ours.named_parameters():
            ref = their_params[names[name]].grad.numpy()
            np.testing.assert_allclose(p.grad.numpy(), ref, rtol=RTOL, atol=FLOOR * scale,
                                       err_msg=f"step {step}: grad of {name}")
        opt.step()
        opt_ref.step()
        # Adam turns a gradient that is rounding noise (above) into a step of up to
        # lr * |g| / (|g| + eps) ~ lr * 1e-9: the floor after a step is lr * 1e-8.
        for name, p in ours.named_parameters():
            ref = their_params[names[name]].detach().numpy()
            np.testing.assert_allclose(p.detach().numpy(), ref, rtol=RTOL,
                                       atol=max(FLOOR * np.abs(ref).max(), 1e-8 * recipe["lr"]),
                                       err_msg=f"after step {step}: {name}")
    their_buffers = dict(theirs.named_buffers())
    for name, value in ours.named_buffers():                  # BatchNorm running statistics
        close(value.numpy(), their_buffers[names[name]].numpy(), f"buffer {name}")
    ours.eval()
    theirs.eval()
    y, y_ref = ours(minidl.tensor(x64)), theirs(torch.from_numpy(x64))
    close(y.detach().numpy(), y_ref.detach().numpy(), "eval output")
    close(loss_fn(y, minidl.tensor(target)).item(),
          loss_ref_fn(y_ref, torch.from_numpy(target)).item(), "eval loss")


def cells_batch(n, size, seed=0):
    """(images (n, 1, H, W) float32, masks (n, H, W) int64) of synthetic cells."""
    rng = np.random.default_rng(seed)
    pairs = [make_cells(size, rng) for _ in range(n)]
    return (np.stack([p[0] for p in pairs]).astype(np.float32),
            np.stack([p[1] for p in pairs]))


def train_steps(model, x, target, loss_fn, lr, steps, seed=0):
    """``steps`` Adam steps on one batch; the list of losses."""
    minidl.manual_seed(seed)
    opt = minidl.optim.Adam(model.parameters(), lr=lr)
    xt, tt = minidl.tensor(x), minidl.tensor(target)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(xt), tt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


__all__ = ["close", "optimizers", "standard_losses", "fix_dropout_masks", "compare_with_twin",
           "cells_batch", "train_steps", "count_parameters"]
