"""minidl.save / minidl.load: one .npz file, no pickle, atomic, structure preserved."""
import json
import os
import pathlib
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn, serialization


def assert_same(actual, expected, path="obj"):
    """Equal values AND equal types, recursively (1 != 1.0 != True here)."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} is not {type(expected)}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for (ka, va), (ke, ve) in zip(actual.items(), expected.items()):
            assert type(ka) is type(ke), f"{path}: key {ka!r} type"
            assert_same(va, ve, f"{path}[{ke!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{path}: length"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, minidl.Tensor):
        assert actual.requires_grad == expected.requires_grad, f"{path}: requires_grad"
        assert_same(actual.detach().numpy(), expected.detach().numpy(), path)
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{path}: shape"
        np.testing.assert_array_equal(actual, expected, err_msg=path)
    elif isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(actual), path
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def optimizer_like_state():
    rng = np.random.default_rng(0)
    return {
        "state": {
            0: {"step": 3, "exp_avg": minidl.tensor(rng.standard_normal((2, 3))),
                "exp_avg_sq": minidl.tensor(rng.random(3), dtype=minidl.float64)},
            1: {"step": 3, "momentum_buffer": None},
        },
        "param_groups": [
            {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
             "amsgrad": False, "maximize": True, "foreach": None, "name": "encoder",
             "params": [0, 1], "big": 2**70, "inf": float("inf"), "nan": float("nan")},
        ],
        "extras": [np.arange(5), np.float32(1.5), np.int64(-4), np.bool_(True), [], {}, ()],
        (1, "two"): "tuple keys work",
        2.5: "float keys", True: "bool keys", None: "None keys",
    }


def test_round_trip_of_a_nested_optimizer_like_state(tmp_path):
    obj = optimizer_like_state()
    minidl.save(obj, tmp_path / "opt.ckpt")
    loaded = minidl.load(tmp_path / "opt.ckpt")
    assert_same(loaded, obj)
    assert isinstance(loaded["state"][0]["exp_avg"], minidl.Tensor)
    assert isinstance(loaded["extras"][0], np.ndarray)
    assert isinstance(loaded["param_groups"][0]["betas"], tuple)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8", "bool", "float16"])
def test_dtypes_and_shapes_are_preserved(tmp_path, dtype):
    rng = np.random.default_rng(1)
    arrays = [np.asarray(np.abs(rng.standard_normal(shape)) * 10).astype(dtype)
              for shape in [(), (0,), (3,), (2, 3, 4)]]
    obj = {"arrays": arrays, "tensors": [minidl.tensor(a) for a in arrays]}
    minidl.save(obj, tmp_path / "x")
    assert_same(minidl.load(tmp_path / "x"), obj)


def test_model_state_dict_round_trip_gives_identical_outputs(tmp_path):
    torch_free_model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    torch_free_model.register_buffer("steps", minidl.tensor(7))
    sd = torch_free_model.state_dict()
    minidl.save(sd, str(tmp_path / "model.pt"))  # str paths work too
    loaded = minidl.load(str(tmp_path / "model.pt"))
    assert type(loaded) is OrderedDict and list(loaded) == list(sd)
    assert_same(loaded, sd)

    fresh = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    fresh.register_buffer("steps", minidl.tensor(0))
    fresh.load_state_dict(loaded)
    x = minidl.randn(5, 4)
    np.testing.assert_array_equal(fresh(x).data, torch_free_model(x).data)
    assert fresh.steps.item() == 7


def test_parameters_requires_grad_and_sharing_are_preserved(tmp_path):
    p = nn.Parameter(minidl.randn(3))
    t = minidl.randn(2, requires_grad=True)
    frozen = nn.Parameter(minidl.randn(2), requires_grad=False)
    minidl.save({"p": p, "t": t, "again": p, "frozen": frozen}, tmp_path / "f")
    loaded = minidl.load(tmp_path / "f")
    assert type(loaded["p"]) is nn.Parameter and loaded["p"].requires_grad
    assert type(loaded["t"]) is minidl.Tensor and loaded["t"].requires_grad
    assert type(loaded["frozen"]) is nn.Parameter and not loaded["frozen"].requires_grad
    assert loaded["again"] is loaded["p"]  # one object saved twice -> one object loaded
    np.testing.assert_array_equal(loaded["p"].data, p.data)


def test_file_is_a_plain_npz_without_pickle(tmp_path):
    path = tmp_path / "plain.ckpt"
    minidl.save(optimizer_like_state(), path)
    with np.load(path, allow_pickle=False) as npz:  # would raise on any pickled entry
        names = set(npz.files)
        assert "__structure__" in names
        for name in names:
            assert not npz[name].dtype.hasobject
        structure = json.loads(npz["__structure__"].tobytes().decode("utf-8"))
    assert structure["format"] == "minidl" and structure["version"] == 1
    with open(path, "rb") as fh:
        assert fh.read(4) == b"PK\x03\x04"  # a zip archive


def test_exact_path_is_used_and_no_npz_suffix_is_added(tmp_path):
    for name in ["model", "model.pt", "model.npz"]:
        minidl.save({"a": 1}, tmp_path / name)
        assert (tmp_path / name).is_file()
    assert sorted(os.listdir(tmp_path)) == ["model", "model.npz", "model.pt"]
    assert minidl.load(pathlib.Path(tmp_path / "model")) == {"a": 1}


def test_save_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "ckpt"
    minidl.save({"v": 1}, path)
    minidl.save({"v": 2}, path)
    assert minidl.load(path) == {"v": 2}
    assert os.listdir(tmp_path) == ["ckpt"]


def test_unsupported_object_names_its_key_path_and_writes_nothing(tmp_path):
    path = tmp_path / "ckpt"
    minidl.save({"v": 1}, path)
    bad = {"state": {0: {"fine": 1, "model": nn.Linear(2, 2)}}}
    with pytest.raises(TypeError, match=r"type Linear at obj\['state'\]\[0\]\['model'\].*state_dict"):
        minidl.save(bad, path)
    with pytest.raises(TypeError, match=r"type function at obj\[1\]"):
        minidl.save([1, lambda: 0], path)
    with pytest.raises(TypeError, match=r"dict key of type Tensor"):
        minidl.save({minidl.zeros(1): 1}, path)
    with pytest.raises(TypeError, match=r"dtype object at obj\['x'\]"):
        minidl.save({"x": np.array([{}, 1], dtype=object)}, path)
    with pytest.raises(TypeError, match="type set"):
        minidl.save({1, 2}, path)
    assert minidl.load(path) == {"v": 1}  # the previous file is untouched
    assert os.listdir(tmp_path) == ["ckpt"]  # and no temporary file is left behind


def test_circular_reference_is_a_clear_error(tmp_path):
    loop = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match="circular"):
        minidl.save(loop, tmp_path / "x")
    shared = [1, 2]
    minidl.save({"a": shared, "b": shared}, tmp_path / "ok")  # shared but not circular: fine
    assert minidl.load(tmp_path / "ok") == {"a": [1, 2], "b": [1, 2]}


def test_a_crash_during_writing_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    minidl.save({"v": np.arange(3)}, path)

    def crash(fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        minidl.save({"v": np.arange(100)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(minidl.load(path)["v"], np.arange(3))
    assert os.listdir(tmp_path) == ["ckpt"]

    # a crash on the very first save leaves no file at all
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        minidl.save({"v": 1}, tmp_path / "new")
    assert os.listdir(tmp_path) == ["ckpt"]


def test_loading_something_else_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "foreign.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a minidl checkpoint"):
        minidl.load(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.zeros(2))
    with pytest.raises(ValueError, match="single .npy array"):
        minidl.load(tmp_path / "single.npy")
    with pytest.raises(TypeError, match="expected a file path"):
        minidl.save({}, 42)
    with pytest.raises(FileNotFoundError):
        minidl.load(tmp_path / "missing")


def test_public_names():
    assert minidl.save is serialization.save and minidl.load is serialization.load


def _same(a, b):
    """Equal objects as saved: tensors by value, containers entry by entry."""
    if isinstance(a, minidl.Tensor):
        return isinstance(b, minidl.Tensor) and np.array_equal(a.detach().numpy(), b.detach().numpy())
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_every_truncation_and_bit_flip_is_a_clear_error_or_the_same_object(tmp_path):
    obj = {"w": minidl.randn(3, 4), "step": 7, "names": ["a", "b"]}
    good = tmp_path / "good.npz"
    minidl.save(obj, good)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    cases = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
    for position in range(0, len(data), max(1, len(data) // 60)):
        flipped = bytearray(data)
        flipped[position] ^= 0x5A
        cases.append(bytes(flipped))
    for content in cases:
        bad.write_bytes(content)
        try:
            loaded = minidl.load(bad)
        except ValueError as error:
            message = str(error)
            assert message.startswith(f"minidl.load: {bad} ") and "\n" not in message, message
        else:
            assert _same(loaded, obj)  # an untouched part of the archive (its padding, a comment)


@pytest.mark.parametrize("content, kind", [(b"\x89PNG\r\n\x1a\n0000", "a PNG image"),
                                           (b"\x80\x04\x95", "a pickle file"),
                                           (b"hello world", "not a zip archive")])
def test_a_foreign_file_says_what_it_is(tmp_path, content, kind):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"minidl.load: .* is not a minidl checkpoint: it is {kind}"):
        minidl.load(path)
