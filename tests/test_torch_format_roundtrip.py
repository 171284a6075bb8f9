"""Round trips between torch.save/torch.load and minidl.save/minidl.load on whole models,
optimizer states and views (tests/test_torch_format.py has the format's details and refusals)."""
import os
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl


def _same(ours, theirs):
    """Structure, types, dtypes and values equal (torch tensors on one side, minidl's on the other)."""
    if isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            _same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    elif hasattr(theirs, "detach") and isinstance(ours, np.ndarray):  # minidl's optimizer state
        np.testing.assert_array_equal(ours, theirs.numpy())
    elif hasattr(theirs, "detach"):
        assert isinstance(ours, minidl.Tensor)
        assert type(ours).__name__ == type(theirs).__name__  # Parameter stays Parameter
        assert ours.requires_grad == theirs.requires_grad
        expected = theirs.detach().numpy()
        got = ours.detach().numpy()
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    else:
        assert ours == theirs and type(ours) is type(theirs)


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
            _same(minidl.load(path), obj)
        finally:
            monkeypatch.undo()
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
        _same(obj, theirs)
        _same(minidl.load(tmp_path / name), theirs)  # and back
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
