"""DistributedDataParallel on every rank: each case trains on this rank's shard of a global batch
and saves what it got (gradients, parameters, outputs) as <out>/<case>_rank<r>.npz.

    python ddp.py OUT [case ...]        (under mpiexec -n 2; all cases when none is named)
"""

import sys

import numpy as np

import minidl
import minidl.distributed as dist
from minidl.nn.parallel import DistributedDataParallel as DDP

from ddp_cases import SPLITS, global_batch, loss_fn, make_model, named_grads, named_params, shard

out = sys.argv[1]
rank = dist.init()


def save(case, **arrays):
    np.savez(f"{out}/{case}_rank{rank}.npz", **arrays)


def wrapped(kind, sync_bn=False, **kwargs):
    """Each rank builds the model from a seed of its OWN: DDP must make them rank 0's."""
    model = make_model(kind, seed=100 + rank)
    if sync_bn:
        model = minidl.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DDP(model, **kwargs)


def one_step(kind, split, sync_bn=False):
    model = wrapped(kind, sync_bn)
    x = minidl.tensor(shard(global_batch(kind, sum(split)), split, rank))
    output = model(x)
    loss_fn(output).backward()
    return model, output


def case_grads(case, kind, split):
    model, _ = one_step(kind, split)
    save(case, **named_grads(model.module))


def case_strict():
    """The same on the strict test device (arrays that refuse implicit trips to the host)."""
    split = SPLITS["uneven"]
    model = DDP(minidl.nn.SyncBatchNorm.convert_sync_batchnorm(make_model("convnet_bn", seed=100 + rank).to("strict")))
    x = minidl.tensor(shard(global_batch("convnet_bn", sum(split)), split, rank), device="strict")
    loss_fn(model(x)).backward()
    save("strict", **{name: p.grad.cpu().numpy() for name, p in model.module.named_parameters()})


def case_adam():
    split = SPLITS["uneven"]
    model = wrapped("convnet")
    optimizer = minidl.optim.Adam(model.parameters(), lr=0.01)
    for step in range(5):
        optimizer.zero_grad()
        x = minidl.tensor(shard(global_batch("convnet", sum(split), step), split, rank))
        loss_fn(model(x)).backward()
        optimizer.step()
    params = named_params(model.module)
    raw = np.concatenate([np.frombuffer(params[name].tobytes(), np.uint8) for name in sorted(params)])
    save("adam", raw_bytes=raw, **params)


def case_no_sync():
    split = SPLITS["even"]
    model = wrapped("convnet")
    for step in range(3):  # two accumulated micro-batches, the third one reduces all three
        x = minidl.tensor(shard(global_batch("convnet", sum(split), step), split, rank))
        if step < 2:
            with model.no_sync():
                loss_fn(model(x)).backward()
            if step == 1:  # nothing was communicated: this rank's own gradient so far
                save("no_sync_local", **named_grads(model.module))
        else:
            loss_fn(model(x)).backward()
    save("no_sync", **named_grads(model.module))


def case_batch_norm(case, kind, sync_bn):
    split = SPLITS["uneven"]
    model, output = one_step(kind, split, sync_bn)
    buffers = {f"buffer.{name}": b.numpy().copy() for name, b in model.module.named_buffers()}
    save(case, output=output.detach().numpy(), **named_grads(model.module), **buffers)


def case_unused():
    split = SPLITS["even"]
    model, _ = one_step("unused", split)
    try:
        model(minidl.tensor(shard(global_batch("unused", sum(split)), split, rank)))
        message = "no error"
    except RuntimeError as error:
        message = str(error)
    found, _ = one_step_find_unused(split)
    save("unused", message=np.array(message), unused_grad_is_none=np.array(found.module.unused.weight.grad is None),
         **named_grads(found.module))


def one_step_find_unused(split):
    model = wrapped("unused", find_unused_parameters=True)
    x = minidl.tensor(shard(global_batch("unused", sum(split)), split, rank))
    output = model(x)
    loss_fn(output).backward()
    return model, output


CASES = {
    "grads_convnet": lambda: case_grads("grads_convnet", "convnet", SPLITS["even"]),
    "grads_unet": lambda: case_grads("grads_unet", "unet", SPLITS["even"]),
    "grads_uneven": lambda: case_grads("grads_uneven", "convnet", SPLITS["uneven"]),
    "adam": case_adam,
    "strict": case_strict,
    "no_sync": case_no_sync,
    "unused": case_unused,
    "bn_local": lambda: case_batch_norm("bn_local", "convnet_bn", sync_bn=False),
    "bn_sync": lambda: case_batch_norm("bn_sync", "convnet_bn", sync_bn=True),
    "bn_sync_unet": lambda: case_batch_norm("bn_sync_unet", "unet_bn", sync_bn=True),
}
for name in sys.argv[2:] or CASES:
    CASES[name]()
dist.barrier()
