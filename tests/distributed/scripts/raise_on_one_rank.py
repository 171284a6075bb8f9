"""Rank 1 raises while rank 0 waits in a collective: the job must end, not hang."""

import time

import minidl.distributed as dist

rank = dist.init()
if rank == 1:
    time.sleep(0.5)
    raise ValueError("rank 1 cannot go on")
dist.barrier()
print("rank 0 passed the barrier: wrong")
