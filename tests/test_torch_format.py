"""minidl.load of files written by torch.save, minidl.save to .pt/.pth read by torch.load(weights_only=True),
and the restricted unpickler: what it refuses, without running anything."""
import importlib
import io
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn

TORCH_DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def assert_same(mine, theirs):
    """mine (minidl objects) holds what theirs (torch objects) holds: same structure, types, values."""
    import torch
    if isinstance(theirs, torch.Tensor) and isinstance(mine, np.ndarray):  # minidl's optimizer state
        np.testing.assert_array_equal(mine, theirs.numpy())
    elif isinstance(theirs, torch.Tensor):
        assert isinstance(mine, minidl.Tensor), type(mine)
        assert isinstance(mine, nn.Parameter) == isinstance(theirs, torch.nn.Parameter)
        assert mine.requires_grad == theirs.requires_grad
        expected = theirs.detach().numpy()
        assert mine._data.dtype == expected.dtype and mine.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(mine._data, expected)
    elif isinstance(theirs, dict):
        assert type(mine) is type(theirs) and list(mine) == list(theirs)
        for key in theirs:
            assert_same(mine[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert type(mine) is type(theirs) and len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            assert_same(a, b)
    else:
        assert type(mine) is type(theirs) and mine == theirs


def torch_round_trip(torch, obj, tmp_path, name="ref.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    loaded = minidl.load(path)
    assert_same(loaded, obj)
    return loaded


# ----------------------------------------------------------------------
# torch.save -> minidl.load
# ----------------------------------------------------------------------
def test_conv2d_state_dict_loads_into_minidl_conv2d(torch, tmp_path):
    ref = torch.nn.Conv2d(3, 5, 3, padding=1)
    sd = torch_round_trip(torch, ref.state_dict(), tmp_path)
    assert type(sd) is OrderedDict
    mine = nn.Conv2d(3, 5, 3, padding=1)
    mine.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    expected = ref(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(mine(minidl.tensor(x)).data.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_state_dict_with_int64_num_batches_tracked(torch, tmp_path):
    ref = torch.nn.BatchNorm2d(4)
    ref(torch.randn(3, 4, 5, 5))  # running stats and num_batches_tracked move
    sd = torch_round_trip(torch, ref.state_dict(), tmp_path)
    assert sd["num_batches_tracked"].shape == () and sd["num_batches_tracked"]._data.dtype == np.int64
    assert int(sd["num_batches_tracked"].item()) == 1
    mine = nn.BatchNorm2d(4)
    mine.load_state_dict(sd)
    np.testing.assert_array_equal(mine.running_mean.data.numpy(), ref.running_mean.numpy())


def test_whole_small_model_and_parameters(torch, tmp_path):
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))
    torch_round_trip(torch, ref.state_dict(), tmp_path)
    frozen = torch.nn.Parameter(torch.randn(2, 2), requires_grad=False)
    params = {"w": torch.nn.Parameter(torch.randn(3)), "frozen": frozen,
              "t": torch.randn(2, requires_grad=True)}
    loaded = torch_round_trip(torch, params, tmp_path, "params.pth")
    assert type(loaded["w"]) is nn.Parameter and loaded["w"].requires_grad
    assert type(loaded["frozen"]) is nn.Parameter and not loaded["frozen"].requires_grad
    assert type(loaded["t"]) is minidl.Tensor and loaded["t"].requires_grad


def test_non_contiguous_offset_and_shared_storage(torch, tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"t": base.t(), "col": base[:, 2], "block": base[1:3, ::2], "base": base,
           "flat": torch.arange(5.0)[1:]}
    loaded = torch_round_trip(torch, obj, tmp_path)
    # views of one storage stay views of one array: a write through one is seen by the others
    loaded["base"].data[1, 2] = -7.0
    assert loaded["t"]._data[2, 1] == -7.0 and loaded["col"]._data[1] == -7.0
    assert loaded["t"]._version_counter is loaded["base"]._version_counter
    assert not np.shares_memory(loaded["flat"]._data, loaded["base"]._data)


def test_expanded_tensor_gets_its_own_memory(torch, tmp_path):
    obj = {"e": torch.arange(3.0).expand(4, 3)}  # stride 0
    loaded = torch_round_trip(torch, obj, tmp_path)
    loaded["e"]._data[0, 0] = 5.0
    assert loaded["e"]._data[1, 0] == 0.0


def test_scalar_nested_containers_and_plain_values(torch, tmp_path):
    obj = {"s": torch.tensor(2.5), "nested": [1, (2, "x", None), {"a": [torch.ones(2, dtype=torch.int64)]}],
           "f": 0.1, "b": True, "big": 2 ** 70, "neg": -3, "str": "é", "empty": [], "et": (),
           "od": OrderedDict([("z", 1), ("a", 2)]), (1, 2): "tuple key", 3: "int key"}
    loaded = torch_round_trip(torch, obj, tmp_path)
    assert loaded["s"].shape == ()


def test_optimizer_state_dict(torch, tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch_round_trip(torch, opt.state_dict(), tmp_path)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_every_supported_dtype(torch, tmp_path, dtype):
    t = (torch.arange(-3, 9).reshape(3, 4) % 2 == 0) if dtype == "bool" else \
        torch.arange(-3, 9).reshape(3, 4).to(getattr(torch, dtype))
    torch_round_trip(torch, {"t": t, "tt": t.t()}, tmp_path)


def test_big_endian_storages(torch, tmp_path):
    obj = {"f": torch.randn(3, 2, dtype=torch.float64), "i": torch.arange(5, dtype=torch.int32)}
    path = tmp_path / "little.pth"
    torch.save(obj, path)
    # rewrite as a big-endian machine would: byteorder "big", every storage's bytes swapped
    dtypes = {"0": ">f8", "1": ">i4"}
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(big, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            folder, _, entry = info.filename.partition("/")
            if entry == "byteorder":
                data = b"big"
            elif entry.startswith("data/"):
                little = np.frombuffer(data, dtype=dtypes[entry[5:]].replace(">", "<"))
                data = little.astype(dtypes[entry[5:]]).tobytes()
            dst.writestr(info.filename, data)
    assert_same(minidl.load(big), obj)


def test_bfloat16_is_refused_naming_the_file(torch, tmp_path):
    path = tmp_path / "bf16.pth"
    torch.save({"t": torch.ones(2, dtype=torch.bfloat16)}, path)
    with pytest.raises(pickle.UnpicklingError, match=f"{path}.*BFloat16Storage"):
        minidl.load(path)


def test_legacy_format_says_how_to_resave(torch, tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"t": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=f"{path}.*legacy.*_use_new_zipfile_serialization=True"):
        minidl.load(path)


def test_load_works_with_torch_unimportable(torch, tmp_path, monkeypatch):
    ref = torch.nn.Linear(3, 2)
    path = tmp_path / "linear.pth"
    torch.save(ref.state_dict(), path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(ImportError):
        importlib.import_module("torch")
    loaded = minidl.load(path)
    np.testing.assert_array_equal(loaded["weight"]._data, ref.weight.detach().numpy())


# ----------------------------------------------------------------------
# minidl.save(.pth) -> torch.load(weights_only=True)
# ----------------------------------------------------------------------
def test_minidl_save_pth_is_read_by_torch_weights_only(torch, tmp_path):
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    sd = model.state_dict()
    w = nn.Parameter(minidl.tensor(np.arange(6.0).reshape(2, 3)))
    obj = {"model": sd, "p": w, "p_again": w, "frozen": nn.Parameter(minidl.ones(2), requires_grad=False),
           "nested": [1, (2.5, "s", None), {(1, "k"): True}], "big": -(2 ** 80),
           "np": np.arange(4, dtype=np.int16), "npscalar": np.float32(1.5),
           "opt": {"state": {0: {"step": minidl.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}}
    for suffix in [".pth", ".pt", ".PTH"]:
        path = tmp_path / f"model{suffix}"
        minidl.save(obj, path)
        with open(path, "rb") as fh:
            assert fh.read(2) == b"PK"
        with zipfile.ZipFile(path) as archive:
            assert "model/data.pkl" in archive.namelist()  # not an .npz under a .pth name
            assert not any(name.endswith(".npy") for name in archive.namelist())
        back = torch.load(path, weights_only=True)
        assert isinstance(back["p"], torch.nn.Parameter) and back["p"].requires_grad
        assert not back["frozen"].requires_grad
        assert back["p"] is back["p_again"]
        for key, tensor in sd.items():
            np.testing.assert_array_equal(back["model"][key].numpy(), tensor._data)
            assert back["model"][key].dtype == getattr(torch, str(tensor._data.dtype))
        assert type(back["model"]) is OrderedDict
        assert back["nested"] == [1, (2.5, "s", None), {(1, "k"): True}] and back["big"] == -(2 ** 80)
        assert back["np"].dtype == torch.int16 and back["np"].tolist() == [0, 1, 2, 3]
        assert back["npscalar"] == 1.5 and type(back["npscalar"]) is float
        assert back["opt"]["state"][0]["step"].item() == 3.0
        # and minidl reads its own .pth back
        again = minidl.load(path)
        np.testing.assert_array_equal(again["p"]._data, w._data)
        assert type(again["p"]) is nn.Parameter and again["p"] is again["p_again"]


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_minidl_save_every_dtype_and_layout(torch, tmp_path, dtype):
    a = np.arange(-3, 21).reshape(2, 3, 4)
    a = (a % 3 == 0) if dtype == "bool" else a.astype(dtype)
    obj = {"c": minidl.tensor(a), "t": minidl.tensor(a).permute(2, 0, 1), "s": minidl.tensor(a[0, 0, 0]),
           "empty": minidl.tensor(a[:0])}
    minidl.save(obj, tmp_path / "d.pth")
    back = torch.load(tmp_path / "d.pth", weights_only=True)
    for key, tensor in obj.items():
        np.testing.assert_array_equal(back[key].numpy(), tensor._data)
        assert back[key].dtype == getattr(torch, dtype)
    assert_same(minidl.load(tmp_path / "d.pth"), back)


def test_full_round_trip_through_torch(torch, tmp_path):
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    torch.save(ref.state_dict(), tmp_path / "a.pth")
    minidl.save(minidl.load(tmp_path / "a.pth"), tmp_path / "b.pth")
    back = torch.load(tmp_path / "b.pth", weights_only=True)
    for key, value in ref.state_dict().items():
        assert torch.equal(back[key], value) and back[key].dtype == value.dtype


# ----------------------------------------------------------------------
# without torch
# ----------------------------------------------------------------------
def test_save_pth_refuses_what_it_cannot_express_before_writing(tmp_path):
    path = tmp_path / "x.pth"
    for bad, what in [({"m": nn.Linear(2, 2)}, "Linear.*state_dict"), ({"f": len}, "builtin_function"),
                      ({"c": np.array([1 + 2j])}, "complex128"), ({"s": {1, 2}}, "set"),
                      ({"k": {1.5j: 1}}, "dict key")]:
        with pytest.raises(TypeError, match=what):
            minidl.save(bad, path)
        assert os.listdir(tmp_path) == []


def test_other_names_keep_minidl_format(tmp_path):
    minidl.save({"a": minidl.ones(2)}, tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz", allow_pickle=False) as npz:
        assert "__structure__" in npz.files


def test_minidl_pth_round_trip_without_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    base = minidl.tensor(np.arange(12.0).reshape(3, 4))
    obj = OrderedDict([("w", nn.Parameter(base)), ("t", base.t()), ("n", minidl.tensor(np.int64(5))),
                       ("odd", [1, (2, "x"), {"k": None}])])
    minidl.save(obj, tmp_path / "r.pth")
    back = minidl.load(tmp_path / "r.pth")
    assert type(back) is OrderedDict and list(back) == list(obj)
    np.testing.assert_array_equal(back["t"]._data, base._data.T)
    assert back["n"]._data.dtype == np.int64 and back["odd"] == [1, (2, "x"), {"k": None}]


def torch_like_zip(path, pickled, storages=(), name="archive"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/data.pkl", pickled)
        archive.writestr(f"{name}/byteorder", "little")
        for key, data in storages:
            archive.writestr(f"{name}/data/{key}", data)
        archive.writestr(f"{name}/version", "3\n")


class Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func, refused", [(os.system, "system"), (eval, "builtin.*eval"),
                                           (exec, "builtin.*exec"), (open, "open")])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, func, refused):
    marker = tmp_path / "pwned"
    arg = {os.system: f"touch {marker}", eval: f"open({str(marker)!r}, 'w')",
           exec: f"open({str(marker)!r}, 'w')", open: str(marker)}[func]
    args = (arg, "w") if func is open else (arg,)
    pickled = pickle.dumps({"weight": Payload(func, *args)}, protocol=2)
    path = tmp_path / "evil.pth"
    torch_like_zip(path, pickled)
    with pytest.raises(pickle.UnpicklingError, match=f"{path}.*refused the global.*{refused}"):
        minidl.load(path)
    assert not marker.exists()


def test_the_payload_is_real(tmp_path):
    """The planted payload does create the file when unpickled without restriction (so the test
    above can fail)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Payload(eval, f"open({str(marker)!r}, 'w').close()"), protocol=2))
    assert marker.exists()


def test_hand_written_globals_and_build_are_refused(tmp_path):
    cases = [
        (b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR.", "posix.system"),
        (b"\x80\x02ctorch._utils\n_rebuild_from_type_v2\n.", "_rebuild_from_type_v2"),
        (b"\x80\x02ctorch\nload\n.", "torch.load"),
        # BUILD on an allowed object with a non-dict state would setattr anything
        (b"\x80\x02ccollections\nOrderedDict\n)R(X\x09\x00\x00\x00__class__Ntb.", "state"),
        (b"\x80\x02(ccollections\nOrderedDict\no.", "opcode"),  # OBJ: cls.__new__ of anything
    ]
    for pickled, refused in cases:
        path = tmp_path / "evil.pth"
        torch_like_zip(path, pickled)
        with pytest.raises(pickle.UnpicklingError, match=f"{path}.*{refused}"):
            minidl.load(path)


def hand_tensor_pickle(size, stride, offset, numel, storage="FloatStorage"):
    """data.pkl for {"t": tensor} written opcode by opcode, as torch.save writes it."""
    def tup(items):
        return b"(" + b"".join(b"J" + struct.pack("<i", i) for i in items) + b"t"
    return (b"\x80\x02}(X\x01\x00\x00\x00tctorch._utils\n_rebuild_tensor_v2\n("
            b"(X\x07\x00\x00\x00storagectorch\n" + storage.encode() + b"\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu"
            + b"J" + struct.pack("<i", numel) + b"tQ" + b"J" + struct.pack("<i", offset)
            + tup(size) + tup(stride) + b"\x89ccollections\nOrderedDict\n)RtRu.")


def test_hand_written_torch_file_loads_without_torch(tmp_path):
    data = np.arange(10, dtype="<f4")
    path = tmp_path / "hand.pth"
    torch_like_zip(path, hand_tensor_pickle((2, 3), (1, 2), 1, 10), [("0", data.tobytes())])
    loaded = minidl.load(path)
    np.testing.assert_array_equal(loaded["t"]._data, data[1:7].reshape(3, 2).T)


@pytest.mark.parametrize("size, stride, offset, numel, nbytes", [
    ((2, 3), (3, 1), 5, 10, 40),   # reaches element 10 of 10
    ((4,), (3,), 0, 10, 40),       # reaches element 9: fine (control case below)
    ((2,), (1,), 0, 10, 12),       # the storage entry is shorter than numel says
])
def test_tensor_outside_its_storage_is_refused(tmp_path, size, stride, offset, numel, nbytes):
    path = tmp_path / "bad.pth"
    torch_like_zip(path, hand_tensor_pickle(size, stride, offset, numel), [("0", bytes(nbytes))])
    if size == (4,):
        assert minidl.load(path)["t"].shape == (4,)
        return
    with pytest.raises(pickle.UnpicklingError, match=f"{path}.*(storage|past)"):
        minidl.load(path)


def test_truncated_or_corrupt_torch_file_is_one_clear_error(tmp_path):
    data = np.arange(10, dtype="<f4")
    good = tmp_path / "good.pth"
    torch_like_zip(good, hand_tensor_pickle((10,), (1,), 0, 10), [("0", data.tobytes())])
    raw = good.read_bytes()
    path = tmp_path / "bad.pth"
    for cut in range(1, len(raw), 7):
        path.write_bytes(raw[:cut])
        with pytest.raises((ValueError, pickle.UnpicklingError), match=str(path)):
            minidl.load(path)
    # a truncated pickle inside a sound zip
    torch_like_zip(path, hand_tensor_pickle((10,), (1,), 0, 10)[:-2], [("0", data.tobytes())])
    with pytest.raises(ValueError, match=f"{path} is damaged"):
        minidl.load(path)


def test_minidl_pth_names_only_globals_that_weights_only_admits(tmp_path):
    """Sanity: minidl's own .pth pickle names only the globals torch's weights_only admits."""
    minidl.save({"w": nn.Parameter(minidl.ones(2)), "o": OrderedDict(a=minidl.tensor(1))}, tmp_path / "g.pth")
    with zipfile.ZipFile(tmp_path / "g.pth") as archive:
        pickled = archive.read("g/data.pkl")
    import pickletools
    globals_ = set()
    for opcode, arg, _ in pickletools.genops(io.BytesIO(pickled)):
        if opcode.name == "GLOBAL":
            globals_.add(arg)
    assert globals_ == {"torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_parameter",
                        "collections OrderedDict", "torch FloatStorage", "torch LongStorage"}


def test_size_dtype_device_and_bytes(torch, tmp_path):
    path = tmp_path / "misc.pth"
    torch.save({"size": torch.Size([2, 3]), "dtype": torch.float64, "int": torch.int64,
                "dev": torch.device("cpu"), "bytes": b"\x00\xffab"}, path)
    loaded = minidl.load(path)
    assert loaded == {"size": (2, 3), "dtype": minidl.float64, "int": minidl.int64, "dev": "cpu",
                      "bytes": b"\x00\xffab"}


# --- round trips of whole models, optimizer states and views ---

def test_torch_state_dicts_load_without_torch_help(torch, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                torch.nn.Conv2d(3, 2, (1, 2)))
    model(torch.randn(2, 1, 6, 6))  # running stats and num_batches_tracked move
    base = torch.arange(12.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model[0].weight.sum().backward()
    opt.step()
    cases = {
        "model": model.state_dict(),
        "views": {"base": base, "slice": base[2:7], "strided": base[::3], "t": base.reshape(3, 4).t()},
        "scalars": [torch.tensor(3), torch.tensor(2.5, dtype=torch.float64), torch.tensor(True)],
        "dtypes": {str(d): torch.arange(4).to(d) for d in (torch.float32, torch.float64, torch.float16,
                                                          torch.int64, torch.int32, torch.int16,
                                                          torch.int8, torch.uint8, torch.bool)},
        "optimizer": opt.state_dict(),
        "nested": {"epoch": 3, "names": ("a", "b"), "lr": [0.1, None], "p": torch.nn.Parameter(torch.ones(2)),
                   "empty": torch.zeros(0, 3), "od": OrderedDict(x=torch.ones(1))},
    }
    for name, obj in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        monkeypatch.setitem(sys.modules, "torch", None)  # minidl must not need torch to read it
        try:
            loaded = minidl.load(path)
        finally:
            monkeypatch.undo()
        assert_same(loaded, obj)
    views = minidl.load(tmp_path / "views.pth")
    for name in ("slice", "strided", "t"):  # one storage, one array: views stay views
        assert np.shares_memory(views["base"].numpy(), views[name].numpy()), name
    model_sd = minidl.load(tmp_path / "model.pth")
    ours = minidl.nn.Sequential(minidl.nn.Conv2d(1, 3, 3), minidl.nn.BatchNorm2d(3), minidl.nn.ReLU(),
                                minidl.nn.Conv2d(3, 2, (1, 2)))
    ours.load_state_dict(model_sd)
    model.eval(), ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(minidl.tensor(x)).detach().numpy(), model(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_minidl_saves_pth_files_torch_reads(torch, tmp_path):
    model = minidl.nn.Sequential(minidl.nn.Conv2d(1, 2, 3), minidl.nn.BatchNorm2d(2))
    opt = minidl.optim.Adam(model.parameters(), lr=0.01)
    model(minidl.randn(2, 1, 5, 5)).sum().backward()
    opt.step()
    objects = {"a.pth": model.state_dict(), "b.pt": opt.state_dict(),
               "c.pth.tar": {"epoch": 2, "best": 0.5, "arch": "Net", "t": minidl.arange(6).reshape(2, 3).t(),
                             "s": minidl.tensor(1.5), "p": minidl.nn.Parameter(minidl.ones(2)),
                             "l": [minidl.zeros(0, 2), (1, "x", None)], "h": minidl.ones(2, dtype=minidl.float16)}}
    for name, obj in objects.items():
        minidl.save(obj, tmp_path / name)
        with open(tmp_path / name, "rb") as fh:
            assert fh.read(2) == b"PK"  # a zip, never npz bytes under a torch name
        with zipfile.ZipFile(tmp_path / name) as zf:  # the folder inside is named as torch.save names it
            assert f"{os.path.splitext(name)[0]}/data.pkl" in zf.namelist()
        theirs = torch.load(tmp_path / name, weights_only=True)
        assert_same(obj, theirs)
        assert_same(minidl.load(tmp_path / name), theirs)  # and back
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    ref.load_state_dict(torch.load(tmp_path / "a.pth", weights_only=True))
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    ref_opt.load_state_dict(torch.load(tmp_path / "b.pt", weights_only=True))
    assert ref_opt.state_dict()["state"][0]["exp_avg"].shape == (2, 1, 3, 3)


def test_map_location(torch, tmp_path):
    torch.save({"w": torch.nn.Parameter(torch.ones(2))}, tmp_path / "p.pth")
    out = minidl.load(tmp_path / "p.pth", map_location="cpu")
    assert isinstance(out["w"], minidl.nn.Parameter) and out["w"].device == minidl.device("cpu")
    with pytest.raises(TypeError, match="map_location must be a device"):
        minidl.load(tmp_path / "p.pth", map_location=3)


def test_big_endian_storages_are_read_by_their_byteorder(torch, tmp_path):
    values = np.arange(6, dtype=np.float64) * 1.5
    torch.save({"w": torch.tensor(values)}, tmp_path / "le.pth")
    with zipfile.ZipFile(tmp_path / "le.pth") as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(tmp_path / "be.pth", "w") as zf:  # as a big-endian machine writes it
        for n, b in entries.items():
            if n.endswith("/byteorder"):
                b = b"big"
            elif "/data/" in n:
                b = np.frombuffer(b, dtype="<f8").astype(">f8").tobytes()
            zf.writestr(n, b)
    w = minidl.load(tmp_path / "be.pth")["w"]
    np.testing.assert_array_equal(w.numpy(), values)
    assert w.numpy().dtype == np.float64 and w.numpy().dtype.isnative
