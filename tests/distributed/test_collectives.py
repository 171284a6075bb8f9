"""minidl.distributed's collectives on 2 ranks, each rank's answer checked against the sum/max/...
of what the ranks hold, written out here from the script's rule."""

import time

import numpy as np
import pytest

import minidl
import minidl.distributed as dist


def _rank_value(rank):
    return np.arange(6.0).reshape(2, 3) * (rank + 1) + rank


@pytest.mark.parametrize("array_device", ["cpu", "strict"])
def test_collectives_on_two_ranks(mpirun, tmp_path, array_device):
    mpirun("collectives", tmp_path, array_device)
    values = [_rank_value(r) for r in range(2)]
    expected = {"SUM": values[0] + values[1], "PRODUCT": values[0] * values[1],
                "MIN": np.minimum(*values), "MAX": np.maximum(*values), "AVG": (values[0] + values[1]) / 2}
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert int(got["rank"]) == rank and int(got["size"]) == 2
        for name, want in expected.items():
            np.testing.assert_array_equal(got[f"all_reduce_{name}"], want)
            assert got[f"version_moved_{name}"]
        np.testing.assert_array_equal(got["all_reduce_view"], np.array([1.0, 4.0, 7.0, 10.0]) * 3)
        np.testing.assert_array_equal(got["broadcast"], values[1])
        np.testing.assert_array_equal(got["all_gather"], np.stack(values))
        assert got["objects_ok"] and got["gather_objects_ok"]


def test_a_rank_that_raises_ends_the_job_within_ten_seconds(mpirun):
    start = time.monotonic()
    done = mpirun("raise_on_one_rank", check=False, timeout=60)
    took = time.monotonic() - start
    assert done.returncode != 0
    assert took < 10, f"the job took {took:.1f} s to end"
    assert "rank 1 cannot go on" in done.stderr
    assert "wrong" not in done.stdout


# --- one process: what runs without mpiexec ------------------------------------------------------
@pytest.fixture
def single_process():
    dist.destroy_process_group()
    dist.init_process_group()
    yield
    dist.destroy_process_group()


def test_one_process_is_a_job_of_one(single_process):
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    t = minidl.tensor([1.0, 2.0])
    dist.all_reduce(t)
    assert t.tolist() == [1.0, 2.0] and t._version == 1
    out = [minidl.zeros(2)]
    dist.all_gather(out, t)
    assert out[0].tolist() == [1.0, 2.0]


def test_errors_name_the_function_and_argument(single_process):
    with pytest.raises(TypeError, match="all_reduce: tensor must be a minidl.Tensor, got ndarray"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(TypeError, match="all_reduce: op must be"):
        dist.all_reduce(minidl.ones(2), op="sum")
    with pytest.raises(ValueError, match=r"broadcast: src must be a rank in \[0, 0\], got 1"):
        dist.broadcast(minidl.ones(2), src=1)
    with pytest.raises(ValueError, match="all_gather: tensor_list must be a list of world_size=1"):
        dist.all_gather([minidl.ones(2), minidl.ones(2)], minidl.ones(2))
    with pytest.raises(ValueError, match="twice"):
        dist.init_process_group()
    with pytest.raises(ValueError, match="backend must be one of"):
        dist.destroy_process_group()
        dist.init_process_group("tcp")


def test_before_init_pytorch_s_error():
    dist.destroy_process_group()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.get_rank()
