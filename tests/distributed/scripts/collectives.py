"""Each rank runs every collective on tensors of its own and saves what it got."""

import sys

import numpy as np

import minidl
import minidl.distributed as dist

out = sys.argv[1]
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
rank = dist.init()
size = dist.get_world_size()
mine = minidl.tensor(np.arange(6.0).reshape(2, 3) * (rank + 1) + rank, device=device)  # rank r: 3 + ...

results = {}
for op in dist.ReduceOp:
    t = mine.clone()
    version = t._version
    dist.all_reduce(t, op=op)
    results[f"all_reduce_{op.name}"] = t.cpu().numpy()
    results[f"version_moved_{op.name}"] = np.array(t._version > version)
view = minidl.tensor(np.arange(12.0) * (rank + 1), device=device)[1::3]  # a strided view
dist.all_reduce(view)
results["all_reduce_view"] = view.cpu().numpy()
b = mine.clone()
dist.broadcast(b, src=size - 1)
results["broadcast"] = b.cpu().numpy()
gathered = [minidl.zeros(2, 3, device=device, dtype=minidl.float64) for _ in range(size)]
dist.all_gather(gathered, mine)
results["all_gather"] = np.stack([g.cpu().numpy() for g in gathered])
objects = [None, None]
if rank == 0:
    objects = [{"epoch": 3}, "rank zero"]
dist.broadcast_object_list(objects, src=0)
results["objects_ok"] = np.array(objects == [{"epoch": 3}, "rank zero"])
everyone = [None] * size
dist.all_gather_object(everyone, ("rank", rank))
results["gather_objects_ok"] = np.array(everyone == [("rank", r) for r in range(size)])
results["rank"] = np.array(rank)
results["size"] = np.array(size)
dist.barrier()
np.savez(f"{out}/rank{rank}.npz", **results)
