"""PyTorch's top-level names that are no differentiable op: ``from_numpy``/``as_tensor`` (memory
sharing), the ``*_like`` factories, ``linspace``, value tests (``isnan``, ``allclose``, ``equal``,
``logical_*``), ``inference_mode``, ``set_default_dtype``, the dtype names, ``autocast`` and
``GradScaler``. The differentiable ones are in tests/ops/test_top_level_ops.py."""
import warnings

import numpy as np
import pytest

import minidl
from minidl import amp


@pytest.fixture
def default_dtype():
    """Lets a test change the default dtype; float32 again afterwards, whatever happens."""
    yield
    minidl.set_default_dtype(minidl.float32)


# --- from_numpy, as_tensor ------------------------------------------------------------------------

def test_from_numpy_shares_memory_both_ways():
    array = np.arange(6.0).reshape(2, 3)
    t = minidl.from_numpy(array)
    assert t.dtype == minidl.float64 and t.shape == (2, 3) and t.device == "cpu"
    array[0, 1] = 10.0
    assert t[0, 1].item() == 10.0  # a write to the array shows in the tensor
    t[1, 2] = -5.0
    t.add_(1)
    assert array[1, 2] == -4.0 and array[0, 0] == 1.0  # writes through the tensor show in the array


def test_from_numpy_makes_a_cpu_tensor_whatever_the_default_device():
    minidl.set_default_device("strict")
    try:
        array = np.ones(3, dtype=np.int32)
        t = minidl.from_numpy(array)
        assert t.device == "cpu" and t.dtype == minidl.int32
        array[0] = 7
        assert t.tolist() == [7, 1, 1]
    finally:
        minidl.set_default_device(None)


def test_from_numpy_refuses_what_torch_refuses(torch):
    cases = [([1.0], TypeError, r"expected np.ndarray \(got list\)"),
             (np.array([1, None]), TypeError, "can't convert np.ndarray of type numpy.object_. The only supported types are"),
             (np.arange(3)[::-1], ValueError, "At least one stride in the given numpy array is negative")]
    for value, error, message in cases:
        for lib in (minidl, torch):
            with pytest.raises(error, match=message):
                lib.from_numpy(value)
    for lib in (minidl, torch):  # as_tensor shares memory, so it refuses negative strides too
        with pytest.raises(ValueError, match="At least one stride in the given numpy array is negative"):
            lib.as_tensor(np.arange(3)[::-1])
    with pytest.raises(TypeError, match="complex128"):  # PyTorch has complex tensors; minidl not
        minidl.from_numpy(np.ones(2, dtype=complex))
    readonly = np.arange(3.0)
    readonly.flags.writeable = False
    for lib in (minidl, torch):
        with pytest.warns(UserWarning, match="The given NumPy array is not writable"):
            lib.from_numpy(readonly)


def test_as_tensor_shares_memory_where_torch_does(torch):
    for lib in (minidl, torch):
        array = np.arange(3.0)
        shared, copied = lib.as_tensor(array), lib.as_tensor(array, dtype=lib.float32)
        array[0] = 7.0
        assert shared[0].item() == 7.0 and copied[0].item() == 0.0, lib.__name__
        t = lib.tensor([1.0, 2.0])
        assert lib.as_tensor(t) is t and lib.as_tensor(t, dtype=lib.float32) is t
        assert lib.as_tensor([1, 2.0]).dtype == lib.float32 and lib.as_tensor(3).dtype == lib.int64
        assert lib.as_tensor(np.array([1, 2], dtype=np.int32)).dtype == lib.int32


def test_as_tensor_to_another_dtype_is_differentiable():
    t = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = minidl.as_tensor(t, dtype=minidl.float64)
    assert y.dtype == minidl.float64 and y.grad_fn is not None
    (y * 3).sum().backward()
    assert t.grad.dtype == minidl.float32 and t.grad.tolist() == [3.0, 3.0]


def test_as_tensor_copies_an_array_to_the_default_device():
    minidl.set_default_device("strict")
    try:
        array = np.arange(3.0)
        t = minidl.as_tensor(array)
        array[0] = 7.0
        assert t.device == "strict" and t.tolist() == [0.0, 1.0, 2.0]
    finally:
        minidl.set_default_device(None)


# --- factories ----------------------------------------------------------------------------------------

def test_like_factories_follow_the_input_as_torch(torch):
    for value in (np.array([[1, 2, 3]]), np.array([[1.5, 2.0]], dtype=np.float64), np.array([True])):
        ours, theirs = minidl.tensor(value), torch.tensor(value)
        for name, args in [("empty_like", ()), ("full_like", (2.7,)), ("full_like", (3,))]:
            o, t = getattr(minidl, name)(ours, *args), getattr(torch, name)(theirs, *args)
            assert o.shape == tuple(t.shape) and str(t.dtype) == f"torch.{o.dtype}", (name, value.dtype)
            if name == "full_like":
                np.testing.assert_array_equal(o.numpy(), t.numpy())
    x = minidl.ones(2, 3, dtype=minidl.float64)
    for name in ("rand_like", "randn_like"):
        r = getattr(minidl, name)(x)
        assert r.shape == (2, 3) and r.dtype == minidl.float64 and not r.requires_grad
        assert getattr(minidl, name)(x, dtype=minidl.float32, requires_grad=True).requires_grad
        for lib, value in ((minidl, minidl.tensor([1, 2])), (torch, torch.tensor([1, 2]))):
            with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
                getattr(lib, name)(value)
    assert minidl.full_like(x, 1.0, dtype=minidl.int32).dtype == minidl.int32
    assert minidl.empty_like(x, dtype=minidl.float32).dtype == minidl.float32


def test_rand_like_draws_from_the_global_generator():
    minidl.manual_seed(3)
    first = minidl.rand_like(minidl.ones(4))
    minidl.manual_seed(3)
    assert minidl.rand_like(minidl.ones(4)).tolist() == first.tolist()
    assert 0 <= first.min().item() and first.max().item() < 1
    assert abs(minidl.randn_like(minidl.ones(20000)).mean().item()) < 0.05


@pytest.mark.parametrize("start, end, steps, dtype", [(0, 1, 5, None), (-3.5, 10, 7, None), (3, 10, 1, None),
                                                      (3, 10, 0, None), (0, 10, 5, "int64"), (1, 2, 11, "float64"),
                                                      (5, -5, 4, "int32")])
def test_linspace_matches_torch(torch, start, end, steps, dtype):
    ours = minidl.linspace(start, end, steps, dtype=dtype and getattr(minidl, dtype))
    theirs = torch.linspace(start, end, steps, dtype=dtype and getattr(torch, dtype))
    assert str(theirs.dtype) == f"torch.{ours.dtype}" and ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_linspace_refuses_negative_steps_as_torch(torch):
    for lib in (minidl, torch):
        with pytest.raises(RuntimeError, match="number of steps must be non-negative"):
            lib.linspace(0, 1, -1)


def test_empty_has_the_size_and_dtype_asked_for():
    assert minidl.empty(2, 3).shape == (2, 3) and minidl.empty((4,), dtype=minidl.int32).dtype == minidl.int32


# --- values: isnan, allclose, equal, logical ---------------------------------------------------------

def test_value_tests_match_torch(torch):
    for value in (np.array([1.0, np.nan, np.inf, -np.inf, 0.0]), np.array([1, 0, -3]), np.array([True, False])):
        for name in ("isnan", "isinf", "isfinite", "logical_not"):
            ours, theirs = getattr(minidl, name)(minidl.tensor(value)), getattr(torch, name)(torch.tensor(value))
            assert ours.dtype == minidl.bool
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    a, b = np.array([1.0, 0.0, 2.0, 0.0]), np.array([[3], [0]])
    for name in ("logical_and", "logical_or", "logical_xor"):
        ours, theirs = getattr(minidl, name)(minidl.tensor(a), minidl.tensor(b)), getattr(torch, name)(torch.tensor(a), torch.tensor(b))
        assert ours.dtype == minidl.bool
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_allclose_and_equal_match_torch(torch):
    cases = [([1.0, 2.0], [1.0, 2.0 + 1e-6], {}), ([1.0, 2.0], [1.0, 2.1], {}), ([1.0, 2.0], [1.0, 2.1], {"atol": 0.2}),
             ([1.0, 2.0], [1.0], {}), ([float("nan")], [float("nan")], {}), ([float("nan")], [float("nan")], {"equal_nan": True}),
             ([1, 2], [1, 2], {}), ([1.0, 1.0], [1.0], {"rtol": 0.0})]
    for a, b, kwargs in cases:
        assert minidl.allclose(minidl.tensor(a), minidl.tensor(b), **kwargs) == torch.allclose(torch.tensor(a), torch.tensor(b), **kwargs)
        assert minidl.equal(minidl.tensor(a), minidl.tensor(b)) == torch.equal(torch.tensor(a), torch.tensor(b))
    assert minidl.equal(minidl.tensor([1.0]), minidl.tensor([1])) == torch.equal(torch.tensor([1.0]), torch.tensor([1])) is True
    for lib in (minidl, torch):
        with pytest.raises(RuntimeError, match="Float did not match Double"):
            lib.allclose(lib.tensor([1.0]), lib.tensor([1.0], dtype=lib.float64))


def test_is_tensor_and_numel(torch):
    assert minidl.is_tensor(minidl.ones(2)) and not minidl.is_tensor(np.ones(2)) and not minidl.is_tensor([1])
    assert minidl.numel(minidl.ones(2, 3, 4)) == 24 and minidl.numel(minidl.tensor(5.0)) == 1
    for lib in (minidl, torch):
        with pytest.raises(TypeError, match=r"numel\(\): argument 'input' \(position 1\) must be Tensor, not list"):
            lib.numel([1])


# --- inference_mode ------------------------------------------------------------------------------------

def test_inference_mode_as_context_manager_and_decorator_like_torch(torch):
    for lib in (minidl, torch):
        x = lib.ones(2, requires_grad=True)
        with lib.inference_mode():
            assert not lib.is_grad_enabled() and lib.is_inference_mode_enabled()
            assert not (x * 2).requires_grad
            with lib.inference_mode(False):
                assert lib.is_grad_enabled() and not lib.is_inference_mode_enabled()
        with lib.no_grad():
            with lib.inference_mode(False):
                assert lib.is_grad_enabled()  # inference_mode(False) turns recording on, as PyTorch
        assert lib.is_grad_enabled() and not lib.is_inference_mode_enabled()

        @lib.inference_mode()
        def called():
            return lib.is_grad_enabled(), lib.is_inference_mode_enabled()

        @lib.inference_mode
        def bare():
            return lib.is_grad_enabled(), lib.is_inference_mode_enabled()

        assert called() == bare() == (False, True), lib.__name__
        assert (x * 2).requires_grad


def test_inference_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with minidl.inference_mode():
            1 / 0
    assert minidl.is_grad_enabled() and not minidl.is_inference_mode_enabled()


# --- default dtype -------------------------------------------------------------------------------------

def test_set_default_dtype_changes_what_torch_changes(torch, default_dtype):
    assert minidl.get_default_dtype() == minidl.float32
    for lib in (minidl, torch):
        lib.set_default_dtype(lib.float64)
        made = {"tensor": lib.tensor([1.5]), "zeros": lib.zeros(2), "ones": lib.ones(1), "rand": lib.rand(2),
                "randn": lib.randn(2), "empty": lib.empty(1), "full": lib.full((1,), 2.5), "arange": lib.arange(0.0, 2),
                "linspace": lib.linspace(0, 1, 3), "eye": lib.eye(2), "int + float": lib.tensor([1]) * 2.5,
                "int / int": lib.tensor([1]) / lib.tensor([2]), "exp(int)": lib.exp(lib.tensor([1])),
                "int tensor": lib.tensor([1]), "bool tensor": lib.tensor([True])}
        dtypes = {name: str(t.dtype).replace("torch.", "") for name, t in made.items()}
        if lib is minidl:
            ours = dtypes
        else:
            assert ours == dtypes
        assert lib.get_default_dtype() == lib.float64
        lib.set_default_dtype(lib.float32)
    assert ours["zeros"] == "float64" and ours["int tensor"] == "int64"


def test_set_default_dtype_refuses_non_floats_as_torch(torch, default_dtype):
    for lib in (minidl, torch):
        with pytest.raises(TypeError, match="only floating-point types are supported as the default type"):
            lib.set_default_dtype(lib.int64)
    with pytest.raises(TypeError, match="float32 and float64"):  # PyTorch takes half precision; minidl not
        minidl.set_default_dtype(minidl.float16)
    assert minidl.get_default_dtype() == minidl.float32


def test_the_default_dtype_is_float32_again_after_a_test():
    assert minidl.get_default_dtype() == minidl.float32 and minidl.zeros(1).dtype == minidl.float32


def test_nn_layers_use_the_default_dtype(default_dtype):
    minidl.set_default_dtype(minidl.float64)
    assert minidl.nn.Linear(2, 3).weight.dtype == minidl.float64


# --- dtype names -----------------------------------------------------------------------------------------

NAMES = ["float", "double", "long", "int", "int32", "int16", "int8", "uint8", "float16", "half", "short",
         "float32", "float64", "int64", "bool"]


def test_dtype_names_are_torch_s(torch):
    for name in NAMES:
        assert str(getattr(torch, name)) == f"torch.{getattr(minidl, name)}", name


@pytest.mark.parametrize("name", NAMES)
def test_tensor_and_to_accept_every_dtype_as_torch(torch, name):
    data = [[0, 1], [2, 3]]
    ours = minidl.tensor(data, dtype=getattr(minidl, name))
    theirs = torch.tensor(data, dtype=getattr(torch, name))
    assert str(theirs.dtype) == f"torch.{ours.dtype}"
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    converted = minidl.tensor([[0.5, 1.7], [-2.5, 3.0]]).to(getattr(minidl, name))
    expected = torch.tensor([[0.5, 1.7], [-2.5, 3.0]]).to(getattr(torch, name))
    assert converted.dtype == ours.dtype
    if name not in ("uint8",):  # -2.5 -> uint8 is undefined behaviour in C; PyTorch and NumPy differ
        np.testing.assert_array_equal(converted.numpy(), expected.numpy())


# --- autocast, GradScaler -----------------------------------------------------------------------------------

@pytest.fixture
def fresh_autocast(monkeypatch):
    """As if no autocast had been entered yet in this process."""
    monkeypatch.setattr(amp, "_warned", False)


def test_autocast_is_a_no_op_that_warns_once(fresh_autocast):
    x = minidl.ones(2, 2)
    with pytest.warns(UserWarning, match=r"minidl.autocast\('cpu'\) does nothing"):
        with minidl.autocast("cpu") as context:
            y = x @ x
    assert isinstance(context, minidl.autocast) and y.dtype == minidl.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        with minidl.autocast("cuda", dtype=minidl.float16):
            pass

        @minidl.autocast("cpu")
        def double(t):
            return t * 2

        assert double(x).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert minidl.amp.autocast is minidl.autocast


def test_a_disabled_autocast_does_not_warn(fresh_autocast):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with minidl.autocast("cpu", enabled=False):
            pass
    with pytest.warns(UserWarning, match="does nothing"):
        with minidl.autocast("cpu"):
            pass


def test_autocast_takes_torch_s_arguments(torch):
    import inspect
    for ours, theirs in [(minidl.autocast, torch.autocast), (minidl.amp.GradScaler, torch.amp.GradScaler)]:
        ours, theirs = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
        assert [(p.name, p.default) for p in ours.values()] == [(p.name, p.default) for p in theirs.values()]
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        minidl.autocast(0)


def test_grad_scaler_passes_through():
    p = minidl.nn.Parameter(minidl.ones(2))
    optimizer = minidl.optim.SGD([p], lr=0.5)
    scaler = minidl.amp.GradScaler()
    loss = (p * 3).sum()
    assert scaler.scale(loss) is loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert p.tolist() == [-0.5, -0.5] and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    assert scaler.state_dict() == {}
