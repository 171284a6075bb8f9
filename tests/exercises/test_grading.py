"""`minidl ex grade` (hidden checks -> Gradescope results.json + JUnit XML), `submit`, and
`milestone unet` (the demo U-Net trained on the student's ops)."""
import json
import os
import xml.etree.ElementTree as ET
import zipfile

import pytest

from minidl.exercises import cli, get
from minidl.exercises.grading import grade
from minidl.exercises.milestone import milestone_unet, preflight

HIDDEN_CONFIG = {"N": 1, "C": 3, "H": 9, "W": 4, "KH": 3, "KW": 2, "SH": 2, "SW": 1, "PH": 1, "PW": 0, "DH": 1, "DW": 1}


def _student(directory, name, replace=None):
    """Start ``name`` in ``directory`` and fill it with the reference (with a planted bug)."""
    cli.main(["ex", "start", name, "--dir", str(directory)])
    source = get(name).text("reference.py")
    if replace:
        assert source.count(replace[0]) == 1
        source = source.replace(*replace)
    (directory / name / "student.py").write_text(source)


COL2IM_ASSIGN = ("dxpad[:, :, rows, columns] += cols[:, :, p, q]", "dxpad[:, :, rows, columns] = cols[:, :, p, q]")
RELU_NO_DY = ("return dy * (x > 0)", "return (x > 0).astype(dy.dtype)")


def _hidden(tmp_path, **extra):
    hidden = {"seeds": [11, 12], "examples": 15,
              "exercises": {"col2im": {"points": 10, "configs": [HIDDEN_CONFIG]}, "activations": {"points": 4}}}
    hidden.update(extra)
    path = tmp_path / "hidden.json"
    path.write_text(json.dumps(hidden))
    return str(path)


def test_grade_writes_gradescope_results_and_junit(tmp_path):
    work = tmp_path / "work"
    _student(work, "col2im")
    _student(work, "activations", RELU_NO_DY)
    totals = grade(str(work), _hidden(tmp_path), out_dir=str(tmp_path / "out"), out=lambda *a: None)
    assert totals == {"work": pytest.approx(10.0)}
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["score"] == pytest.approx(10.0)
    tests = results["tests"]
    assert len(tests) == 2 * 2 + 2  # col2im: 2 seeds + 1 config x 2 seeds; activations: 2 seeds
    assert {"name", "score", "max_score", "output", "visibility"} <= set(tests[0])
    assert sum(t["max_score"] for t in tests) == pytest.approx(14.0)
    failed = [t for t in tests if t["score"] < t["max_score"]]
    assert len(failed) == 2 and all(t["name"].startswith("activations") for t in failed)
    assert all("multiply by the upstream gradient" in t["output"] for t in failed)
    assert all("configuration" not in t["output"] for t in failed)  # hidden inputs stay hidden
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    assert root.tag == "testsuites" and root.get("tests") == "6" and root.get("failures") == "2"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"col2im", "activations"}
    assert len(suites["activations"].findall("testcase/failure")) == 2
    assert suites["col2im"].findall("testcase/failure") == []


def test_grade_a_folder_of_submissions_zips_included_missing_and_untouched_score_zero(tmp_path):
    everyone = tmp_path / "all"
    _student(everyone / "ada", "col2im")
    _student(everyone / "bob", "col2im", COL2IM_ASSIGN)
    cli.main(["ex", "start", "col2im", "--dir", str(everyone / "cy")])  # untouched stub
    _student(tmp_path / "dee", "col2im")
    cli.main(["ex", "submit", "--dir", str(tmp_path / "dee"), "--out", str(everyone / "dee.zip")])
    hidden = _hidden(tmp_path)
    totals = grade(str(everyone), hidden, out_dir=str(tmp_path / "out"), out=lambda *a: None)
    assert totals == {"ada": pytest.approx(10.0), "bob": 0.0, "cy": 0.0, "dee": pytest.approx(10.0)}
    for who in totals:
        assert json.loads((tmp_path / "out" / who / "results.json").read_text())["score"] == pytest.approx(totals[who])
    bob = json.loads((tmp_path / "out" / "bob" / "results.json").read_text())["tests"]
    assert any("col2im must ADD" in t["output"] for t in bob)
    cy = json.loads((tmp_path / "out" / "cy" / "results.json").read_text())["tests"]
    assert "untouched" in cy[0]["output"] and "no student.py" in cy[-1]["output"]


def test_reveal_shows_the_failing_hidden_configuration(tmp_path):
    _student(tmp_path / "work", "col2im", COL2IM_ASSIGN)
    grade(str(tmp_path / "work"), _hidden(tmp_path), out_dir=str(tmp_path / "out"), reveal=True, out=lambda *a: None)
    tests = json.loads((tmp_path / "out" / "results.json").read_text())["tests"]
    assert any("configuration: {" in t["output"] and "seed 11" in t["output"] for t in tests)


@pytest.mark.parametrize("content, message", [
    ("{", "is not JSON"),
    ('{"exercises": {}}', "non-empty"),
    ('{"exercises": {"nope": {}}}', "unknown exercise 'nope'"),
    ('{"seeds": [], "exercises": {"col2im": {}}}', "seeds"),
    ('{"exercises": {"col2im": {"points": -1}}}', "col2im.points"),
    ('{"exercises": {"col2im": {"configs": [{"H": 1, "KH": 3}]}}}', "is not valid"),
    ('{"exercises": {"col2im": {"configs": [{"Q": 1}]}}}', "unknown keys"),
])
def test_a_bad_hidden_file_is_one_line_and_nothing_is_written(tmp_path, capsys, content, message):
    _student(tmp_path / "work", "col2im")
    (tmp_path / "hidden.json").write_text(content)
    code = cli.main(["ex", "grade", str(tmp_path / "work"), "--hidden", str(tmp_path / "hidden.json"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_submit_zips_the_student_files_with_the_public_results(tmp_path, capsys):
    _student(tmp_path, "col2im")
    _student(tmp_path, "activations", RELU_NO_DY)
    cli.main(["ex", "start", "maxpool2d", "--dir", str(tmp_path)])
    assert cli.main(["ex", "submit", "--dir", str(tmp_path)]) == 0
    with zipfile.ZipFile(tmp_path / "submission.zip") as z:
        names = set(z.namelist())
        checks = json.loads(z.read("checks.json"))
        assert z.read("col2im/student.py").decode() == (tmp_path / "col2im" / "student.py").read_text()
    assert names == {"col2im/student.py", "activations/student.py", "maxpool2d/student.py", "checks.json"}
    assert checks["col2im"].startswith("public checks passed")
    assert checks["activations"].startswith("FAILED at gradient")
    assert "untouched" in checks["maxpool2d"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_preflight_names_the_op_that_changes_the_unet_gradients(tmp_path):
    _student(tmp_path, "col2im", COL2IM_ASSIGN)
    _student(tmp_path, "maxpool2d")
    _student(tmp_path, "activations", RELU_NO_DY)
    exercises = [get("col2im"), get("maxpool2d"), get("activations")]
    broken = preflight(str(tmp_path), exercises, out=lambda *a: None)
    assert set(broken) == {"col2im", "activations"}
    assert "gradient of" in broken["col2im"]


def test_milestone_unet_reaches_the_demo_dice_on_the_students_ops(tmp_path):
    for name in ("col2im", "maxpool2d", "activations", "softmax_cross_entropy", "sum_to_shape"):
        _student(tmp_path, name)
    lines = []
    passed, dice, broken = milestone_unet(str(tmp_path), progress=False, out=lines.append)
    assert passed and dice >= 0.9 and broken == {}, "\n".join(lines)
    assert "your code for sum_to_shape, activations, softmax_cross_entropy, col2im, maxpool2d" in lines[0]
    assert os.path.isfile(tmp_path / "milestone_unet" / "best.npz")


def test_milestone_unet_fails_and_names_the_broken_op(tmp_path, capsys):
    _student(tmp_path, "activations", RELU_NO_DY)
    code = cli.main(["ex", "milestone", "unet", "--dir", str(tmp_path), "--epochs", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "milestone unet FAILED: your activations breaks training" in out
