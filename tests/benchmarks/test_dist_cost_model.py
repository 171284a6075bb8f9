"""The all-reduce cost model's arithmetic (benchmarks/dist_cost_model.py, benchmarks/allreduce.py)
against values worked out by hand from T(p, n) = 2(p-1) alpha + 2(p-1)/p n / beta and
S(p) = p t1 / (t1 + T)."""
import math

import pytest

import minidl
from benchmarks.allreduce import fit_ring_model
from benchmarks.dist_cost_model import (Network, allreduce_time, check_scaling, efficiency, scaling_limit,
                                        speedup, this_machine, trainable_bytes)


def test_ring_allreduce_time_by_hand():
    # p = 2, 1 GB at 1 GB/s, 10 us: 2 * 1 * 10 us + 2 * 1/2 * 1 s
    assert allreduce_time(2, 1e9, 1e-5, 1e9) == pytest.approx(1.00002, rel=1e-12)
    # p = 4, 8 MB over 10 GbE (30 us, 1.1 GB/s): 6 * 30 us = 180 us, plus 1.5 * 8e6 / 1.1e9 = 10.909 ms
    assert allreduce_time(4, 8e6, 30e-6, 1.1e9) == pytest.approx(0.000180 + 0.0109090909, rel=1e-9)
    assert allreduce_time(1, 5e8, 1e-3, 1e6) == 0  # one rank: nothing to exchange
    with pytest.raises(ValueError, match="allreduce_time"):
        allreduce_time(0, 10, 1e-6, 1e9)


def test_speedup_and_efficiency_by_hand():
    # the all-reduce as long as the step (1 s): twice the work in twice the time, S = 1
    assert speedup(2, 1.0, 1e9, 0.0, 1e9) == pytest.approx(1.0)
    assert efficiency(2, 1.0, 1e9, 0.0, 1e9) == pytest.approx(0.5)
    # 8 ranks, 3 s step, T = 2 * 7/8 * 4 GB / 8 GB/s = 0.875 s: S = 24 / 3.875
    assert speedup(8, 3.0, 4e9, 0.0, 8e9) == pytest.approx(24 / 3.875)


def test_scaling_limit_by_hand():
    # latency only: T(p) = 2 (p - 1) * 0.25 s = 0.5 (p - 1) > 2.5 s from p = 7 (T(6) = 2.5 is not above)
    assert scaling_limit(2.5, 0, 0.25, 1e9) == 7
    # bandwidth only: T(p) = 2 (p - 1) / p s, which passes 1.5 s from p = 5 (T(4) = 1.5) ...
    assert scaling_limit(1.5, 1000, 0.0, 1000.0) == 5
    # ... and never reaches 2 s
    assert scaling_limit(2.0, 1000, 0.0, 1000.0) is None
    assert scaling_limit(0.1, 1e9, 0.0, 1e9) == 2  # already 2 ranks: T(2) = 1 s > 0.1 s


def test_check_scaling_by_hand():
    net = Network("test", 0.0, 1e9, "a test")
    # 1 GB over 2 ranks at 1 GB/s: T = 1 s; one process 1 s per step, measured 1.25 s with 2 ranks
    result = check_scaling(1e9, 1.0, 1.25, p=2, network=net)
    assert result["allreduce_s"] == pytest.approx(1.0)
    assert result["predicted_step_s"] == pytest.approx(2.0)
    assert result["predicted_speedup"] == pytest.approx(1.0)
    assert result["measured_speedup"] == pytest.approx(1.6)
    assert result["measured_over_predicted_step"] == pytest.approx(0.625)


def test_trainable_bytes_counts_float32_parameters_that_need_a_gradient():
    layer = minidl.nn.Linear(3, 2)  # 6 weights + 2 biases, 4 bytes each
    assert trainable_bytes(layer) == 32
    layer.bias.requires_grad_(False)  # frozen: not all-reduced
    assert trainable_bytes(layer) == 24


def test_fit_recovers_the_parameters_of_exact_times():
    alpha, beta, p = 3e-6, 2.5e9, 2
    sizes = [2 ** k for k in range(12, 27)]
    times = [2 * (p - 1) * alpha + 2 * (p - 1) / p * n / beta for n in sizes]
    fitted_alpha, fitted_beta = fit_ring_model(p, sizes, times)
    assert fitted_alpha == pytest.approx(alpha, rel=1e-6) and fitted_beta == pytest.approx(beta, rel=1e-6)
    # alpha held fixed: beta alone from the large messages
    assert fit_ring_model(p, sizes[-3:], times[-3:], alpha=alpha)[1] == pytest.approx(beta, rel=1e-9)


def test_this_machine_reads_the_measured_fit():
    net = this_machine()
    assert net.name == "this machine"
    assert 0 < net.alpha_s < 1e-3 and 1e8 < net.beta_bytes_per_s < 1e12 and math.isfinite(net.beta_bytes_per_s)
