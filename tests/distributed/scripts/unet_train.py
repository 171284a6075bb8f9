"""``unet train`` as a script for ``mpiexec -n N python unet_train.py ARGS`` (the console script's
``main``); with ``FAIL_ON_RANK=r`` set, rank r raises ``FAIL_WITH`` (RuntimeError: an uncaught
bug; DataError: an error the command line reports) in its loss at its second step,
printing the wall-clock time of the failure first."""

import os
import sys
import time

import unet.train
from unet.__main__ import main
from unet.data import DataError

if "FAIL_ON_RANK" in os.environ:
    import minidl.distributed as dist

    real_loss, calls = unet.train.compute_loss, []

    def failing_loss(*args, **kwargs):
        calls.append(1)
        if dist.get_rank() == int(os.environ["FAIL_ON_RANK"]) and len(calls) == 2:
            kind = {"RuntimeError": RuntimeError, "DataError": DataError}[os.environ["FAIL_WITH"]]
            print(f"failing at {time.time():.3f}", file=sys.stderr, flush=True)  # the test's clock start
            raise kind(f"injected failure on rank {dist.get_rank()}")
        return real_loss(*args, **kwargs)

    unet.train.compute_loss = failing_loss

sys.exit(main(sys.argv[1:]))
