"""The grader of `minidl ex` (minidl/exercises/): stage order, reproduce commands, no input
mutated, float32 tolerance, the --json schema, the CLI's errors, the student override."""
import json
import shlex

import numpy as np
import pytest

from minidl.exercises import cli, get, grader, registry, use_student
from minidl.exercises.selftest import selftest


def _module(exercise, replace=None):
    """The reference of ``exercise`` with (line, replacement) applied: a planted bug."""
    source = get(exercise).text("reference.py")
    if replace:
        assert source.count(replace[0]) == 1
        source = source.replace(*replace)
    return registry.module_from_source(source, f"planted_{exercise}")


def _wrapping(fn):
    """A module whose col2im is ``fn`` (which may call the reference's)."""
    module = type(np)("wrapped")
    module.col2im = fn
    return module


def test_selftest_every_stub_fails_every_reference_passes_every_mutant_is_diagnosed():
    lines = []
    passed, misses = selftest(examples=20, out=lines.append)
    assert misses == [], "\n".join(lines)
    mutants = sum(len(e.spec.MUTANTS) for e in registry.exercises())
    assert passed == 2 * len(registry.exercises()) + mutants
    assert all(len(e.spec.MUTANTS) >= 3 for e in registry.exercises())


def test_selftest_reports_a_mutant_that_is_not_caught(monkeypatch):
    exercise = get("col2im")
    harmless = ("return dxpad[:, :, PH:PH + H, PW:PW + W].copy()", "return dxpad[:, :, PH:PH + H, PW:PW + W].copy() + 0.0",
                "whatever")
    monkeypatch.setattr(exercise.spec, "MUTANTS", [harmless])
    _, misses = selftest(["col2im"], examples=5, out=lambda line: None)
    assert len(misses) == 1 and "not caught" in misses[0]


def test_stages_run_in_order_and_stop_at_the_first_failure():
    exercise = get("col2im")
    ref = exercise.reference()

    def writes_into_input_and_is_wrong(cols, *args):
        out = ref.col2im(cols, *args)
        cols[...] = 0  # a contract failure, although the values are also wrong from now on
        return out * 2

    report = grader.check(exercise, _wrapping(writes_into_input_and_is_wrong))
    assert report["stage"] == "contract" and "wrote into" in report["message"]

    def wrong_dtype(cols, *args):
        return ref.col2im(cols, *args).astype(np.float64)

    assert grader.check(exercise, _wrapping(wrong_dtype))["stage"] == "contract"  # float32 -> float64
    report = grader.check(exercise, _module("col2im", ("+= cols[:, :, p, q]", "= cols[:, :, p, q]")))
    assert report["stage"] == "gradient" and report["output"] == "dx"
    assert "windows overlap" in report["diagnosis"] and report["index"] is not None and report["slice"]


def test_hypothesis_finds_and_shrinks_a_failure_the_public_cases_miss():
    exercise = get("col2im")
    ref = exercise.reference()
    assert all(c["KH"] > 1 or c["KW"] > 1 for c in exercise.spec.public_cases())

    def wrong_for_1x1(cols, x_shape, KH, KW, *rest):
        out = ref.col2im(cols, x_shape, KH, KW, *rest)
        return -out if KH == KW == 1 else out

    report = grader.check(exercise, _wrapping(wrong_for_1x1), hypothesis_examples=200)
    assert report["stage"] == "hypothesis"
    config = report["config"]
    assert config["KH"] == config["KW"] == 1
    assert (config["N"], config["C"], config["H"], config["W"]) == (1, 1, 1, 1)  # shrunk to the smallest
    assert "wrong sign" in report["diagnosis"]


@pytest.mark.parametrize("bug", [("+= cols[:, :, p, q]", "= cols[:, :, p, q]"),
                                 ("rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)",
                                  "rows = slice(SH * p, SH * p + SH * (OH - 1) + 1, SH)")])
def test_the_printed_command_reproduces_the_failure(tmp_path, capsys, bug):
    assert cli.main(["ex", "start", "col2im", "--dir", str(tmp_path)]) == 0
    source = get("col2im").text("reference.py").replace(*bug)
    (tmp_path / "col2im" / "student.py").write_text(source)
    capsys.readouterr()
    assert cli.main(["ex", "check", "col2im", "--dir", str(tmp_path), "--seed", "3", "--json"]) == 1
    first = json.loads(capsys.readouterr().out)["failure"]
    argv = shlex.split(first["command"])
    assert argv[:4] == ["minidl", "ex", "check", "col2im"]
    assert argv[-2:] == ["--dir", str(tmp_path)]  # exactly the command, run as printed
    assert cli.main(argv[1:] + ["--json"]) == 1
    again = json.loads(capsys.readouterr().out)["failure"]
    for key in ("stage", "output", "max_error", "index", "diagnosis"):
        assert again.get(key) == first.get(key), key
    assert again["message"] == first["message"] and again["config"] == first["config"]


def test_float32_rounding_is_not_a_bug_but_a_real_float32_error_is():
    exercise = get("col2im")
    ref = exercise.reference()

    def rounding(cols, *args):  # float32 inputs: off by float32 rounding, as another order of sums
        out = ref.col2im(cols, *args)
        return (out * (1 + 3e-7)).astype(out.dtype) if out.dtype == np.float32 else out

    assert grader.check(exercise, _wrapping(rounding)) is None

    def float32_only_bug(cols, *args):
        out = ref.col2im(cols, *args)
        return (out + 0.1).astype(out.dtype) if out.dtype == np.float32 else out

    report = grader.check(exercise, _wrapping(float32_only_bug))
    assert report["stage"] == "devices" and "float32" in report["message"]


def test_json_schema(tmp_path, capsys):
    cli.main(["ex", "start", "conv2d_backward", "--dir", str(tmp_path)])
    capsys.readouterr()
    assert cli.main(["ex", "check", "conv2d_backward", "--dir", str(tmp_path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["exercise"] == "conv2d_backward" and result["passed"] is False
    keys = {"stage", "output", "case", "seed", "config", "command", "message", "diagnosis", "hint", "hint_text"}
    assert keys <= set(result["failure"])
    assert result["failure"]["stage"] == "contract" and "not implemented" in result["failure"]["message"]
    (tmp_path / "conv2d_backward" / "student.py").write_text(get("conv2d_backward").text("reference.py"))
    assert cli.main(["ex", "check", "conv2d_backward", "--dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"exercise": "conv2d_backward", "passed": True, "failure": None}
    assert cli.main(["ex", "check", "conv2d_backward", "--dir", str(tmp_path)]) == 0
    assert grader.PASSED in capsys.readouterr().out


def test_the_printed_failure_names_stage_case_command_error_diagnosis_and_hint(tmp_path, capsys):
    cli.main(["ex", "start", "conv2d_backward", "--dir", str(tmp_path)])
    source = get("conv2d_backward").text("reference.py").replace("dbias = dy.sum(axis=(0, 2, 3))",
                                                                 "dbias = dy.sum(axis=(2, 3)).mean(axis=0)")
    (tmp_path / "conv2d_backward" / "student.py").write_text(source)
    capsys.readouterr()
    assert cli.main(["ex", "check", "conv2d_backward", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for text in ("FAILED conv2d_backward: stage gradient, dbias", "case: 0", "reproduce: minidl ex check conv2d_backward --case 0 --seed 0",
                 "largest error", "got | want", "DIAGNOSIS: off by a factor equal to the batch size", "next hint: minidl ex hint"):
        assert text in out, text


def test_cli_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    assert cli.main(["ex", "check", "nope", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown exercise 'nope'" in err
    assert cli.main(["ex", "check", "col2im", "--dir", str(tmp_path)]) == 2  # not started
    assert "minidl ex start col2im" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["ex", "hint", "col2im", "--level", "4"])
    assert exit_.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    cli.main(["ex", "start", "col2im", "--dir", str(tmp_path)])
    assert cli.main(["ex", "check", "col2im", "--dir", str(tmp_path), "--case", "99"]) == 2
    assert cli.main(["ex", "check", "col2im", "--dir", str(tmp_path), "--config", '{"bogus": 1}']) == 2


def test_start_never_overwrites_and_list_and_hint(tmp_path, capsys):
    cli.main(["ex", "start", "col2im", "--dir", str(tmp_path)])
    student = tmp_path / "col2im" / "student.py"
    student.write_text("# my work\n")
    cli.main(["ex", "start", "col2im", "--dir", str(tmp_path)])
    assert student.read_text() == "# my work\n"
    assert not (tmp_path / "col2im" / "reference.py").exists()
    capsys.readouterr()
    cli.main(["ex", "list"])
    names = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert names.index("col2im") < names.index("conv2d_backward")
    for level in (1, 2, 3):
        assert get("col2im").hint(level)
    assert "docs/gradients/" in get("col2im").hint(3)


def test_use_student_swaps_the_library_function_and_restores_it(tmp_path):
    import minidl
    from minidl import autograd
    cli.main(["ex", "start", "sum_to_shape", "--dir", str(tmp_path)])
    original = autograd.sum_to_shape
    with use_student(str(tmp_path)):  # an untouched stub is not used
        assert autograd.sum_to_shape is original
    source = get("sum_to_shape").text("reference.py").replace("grad.sum(axis", "grad.mean(axis")
    (tmp_path / "sum_to_shape" / "student.py").write_text(source)
    b = minidl.tensor(np.ones(3), requires_grad=True)
    with use_student(str(tmp_path)):
        (minidl.tensor(np.ones((2, 3))) * b).sum().backward()
    assert np.allclose(b.grad.numpy(), 1.0)  # the student's (wrong) mean ran
    assert autograd.sum_to_shape is original
    b.grad = None
    (minidl.tensor(np.ones((2, 3))) * b).sum().backward()
    assert np.allclose(b.grad.numpy(), 2.0)


def test_references_agree_with_pytorch(torch):
    """The references are the grader's ground truth: check them against PyTorch."""
    rng = np.random.default_rng(0)
    sce = get("softmax_cross_entropy").reference()
    logits = rng.standard_normal((2, 4, 3, 5)) * 3
    target = rng.integers(0, 4, (2, 3, 5))
    target[0, 0, :2] = -100
    weight = rng.uniform(0.5, 2, 4)
    z = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(z, torch.tensor(target), weight=torch.tensor(weight), ignore_index=-100)
    loss.backward(torch.tensor(1.7, dtype=torch.float64))
    assert np.allclose(sce.softmax_cross_entropy(logits, target, weight, -100), loss.item(), rtol=1e-12)
    assert np.allclose(sce.softmax_cross_entropy_backward(logits, target, weight, -100, np.asarray(1.7)),
                       z.grad.numpy(), rtol=1e-10, atol=1e-14)

    conv = get("conv2d_backward").reference()
    x, w, b = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv2d(tx, tw, tb, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    got = conv.conv2d_backward(x, w, dy, (2, 1), (1, 0), (1, 2), 2)
    for mine, theirs in zip(got, (tx.grad, tw.grad, tb.grad)):
        assert np.allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)

    col2im = get("col2im").reference().col2im
    cols = rng.standard_normal((2, 3 * 3 * 2, 3 * 5))
    theirs = torch.nn.functional.fold(torch.tensor(cols), (7, 6), (3, 2), dilation=(2, 1), padding=(1, 0), stride=(2, 1))
    assert np.allclose(col2im(cols, (2, 3, 7, 6), 3, 2, 2, 1, 1, 0, 2, 1), theirs.numpy(), rtol=1e-12)


def test_maxpool_reference_agrees_with_pytorch_on_ties_and_overlaps(torch):
    pool = get("maxpool2d").reference()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (2, 3, 7, 6)).astype(np.float64)  # many ties
    tx = torch.tensor(x, requires_grad=True)
    y, idx = torch.nn.functional.max_pool2d(tx, (3, 2), stride=(1, 2), padding=(1, 1), return_indices=True)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    my_y, my_idx = pool.maxpool2d_forward(x, 3, 2, 1, 2, 1, 1)
    assert np.array_equal(my_y, y.detach().numpy()) and np.array_equal(my_idx, idx.numpy())
    assert np.allclose(pool.maxpool2d_backward(dy, my_idx, x.shape), tx.grad.numpy(), rtol=1e-12)


def _engine_outputs(exercise, inputs):
    import minidl
    with np.errstate(all="ignore"):
        return exercise.spec.engine(minidl, inputs)


@pytest.mark.parametrize("name", [e.name for e in registry.exercises() if hasattr(e.spec, "engine")])
def test_the_override_puts_the_students_code_inside_minidl(name):
    """With a mutant swapped in, minidl's own op gives the mutant's wrong answer on some public
    case (so the override is wired); with the reference swapped in, the library's answer; and on
    exit the library's code is back."""
    from minidl.exercises import overridden
    exercise = get(name)
    source = exercise.text("reference.py")
    mutants = [registry.module_from_source(source.replace(line, replacement), f"mutant_{name}_{i}")
               for i, (line, replacement, _) in enumerate(exercise.spec.MUTANTS)]
    changed = False
    for config in exercise.spec.public_cases():
        inputs = exercise.spec.make(config, np.random.default_rng(0))
        library = _engine_outputs(exercise, inputs)
        with overridden(exercise, exercise.reference()):
            same = _engine_outputs(exercise, inputs)
        assert all(np.allclose(same[k], library[k], rtol=1e-7, atol=1e-9) for k in library)
        for mutant in mutants:
            try:
                with overridden(exercise, mutant):
                    wrong = _engine_outputs(exercise, inputs)
            except (ValueError, IndexError, RuntimeError):  # the mutant's code ran, and broke
                changed = True
                continue
            changed |= any(not np.allclose(wrong[k], library[k], rtol=1e-7, atol=1e-9, equal_nan=True) for k in library)
        again = _engine_outputs(exercise, inputs)
        assert all(np.array_equal(again[k], library[k], equal_nan=True) for k in library)
    assert changed, f"{name}: no mutant changed minidl's result: the override is not wired"


def test_a_half_filled_stub_keeps_the_library_code(tmp_path):
    from minidl.ops import activation
    cli.main(["ex", "start", "activations", "--dir", str(tmp_path)])
    path = tmp_path / "activations" / "student.py"
    text = path.read_text()
    first = text.index("raise NotImplementedError")  # relu filled, the other four not
    path.write_text(text[:first] + "return np.maximum(x, 0)" + text[first + len("raise NotImplementedError"):])
    original = activation.Relu.forward
    with use_student(str(tmp_path)) as swapped:
        assert swapped == [] and activation.Relu.forward is original


def test_the_catalog_is_in_course_order_with_prerequisites_first():
    order = [e.name for e in registry.exercises()]
    assert len(order) >= 14 and len(set(order)) == len(order)
    assert order[0] == "autograd_walk" and order[-1] == "adam"
    for exercise in registry.exercises():
        for needed in exercise.spec.PREREQUISITES:
            assert order.index(needed) < order.index(exercise.name), (exercise.name, needed)
        assert "Prerequisites: " in exercise.text("README.md")
        for level in (1, 2, 3):
            assert exercise.hint(level)
        stub = exercise.text("student.py")
        assert stub.count("# BEGIN YOUR SOLUTION") == stub.count("# END YOUR SOLUTION") >= 1
