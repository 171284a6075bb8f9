"""``minidl ex grade`` and ``minidl ex submit``: hidden checks, scores, and the files CI reads.

A hidden file (JSON, kept by the instructor, never given to students)::

    {"seeds": [101, 202],            # seeds of the random inputs and of hypothesis's search
     "examples": 60,                 # hypothesis examples per check (default 60)
     "exercises": {
        "col2im": {"points": 10,
                   "configs": [{"N": 1, "C": 3, "H": 9, "W": 4, "KH": 3, "KW": 2, "SH": 2,
                                "SW": 1, "PH": 1, "PW": 0, "DH": 1, "DW": 1}]},
        "maxpool2d": {"points": 5}}}

Every listed exercise is graded by a set of hidden tests of equal weight: the whole check
(every stage, hypothesis included) once per hidden seed, and each hidden configuration (merged
into the exercise's first public case, as ``--config`` does) once per seed. An exercise's score
is its points times the fraction of its hidden tests passed. A missing or untouched student
file scores 0 with that said.

Outputs: Gradescope's ``results.json`` (score, one test per hidden test with its points and
output) and a JUnit XML file (one testsuite per exercise, one testcase per hidden test) for
GitHub Classroom and CI. The output names the stage and the diagnosis of a failure; the hidden
configuration and seed are shown only with ``reveal=True``.
"""
import json
import os
import tempfile
import xml.etree.ElementTree as ET
import zipfile

from . import _is_filled, grader
from .registry import ExerciseError, exercises, get, load_module

DEFAULT_EXAMPLES = 60


def read_hidden(path):
    """The hidden file, checked: unknown exercises, bad configurations and bad fields are errors."""
    try:
        with open(path, encoding="utf-8") as f:
            hidden = json.load(f)
    except FileNotFoundError:
        raise ExerciseError(f"minidl ex grade: --hidden {path}: no such file") from None
    except ValueError as error:
        raise ExerciseError(f"minidl ex grade: --hidden {path} is not JSON: {error}") from None
    if not isinstance(hidden, dict) or not isinstance(hidden.get("exercises"), dict) or not hidden["exercises"]:
        raise ExerciseError(f"minidl ex grade: --hidden {path} must be an object with a non-empty \"exercises\" object")
    seeds = hidden.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise ExerciseError(f"minidl ex grade: --hidden {path}: \"seeds\" must be a non-empty list of ints, got {seeds!r}")
    for name, entry in hidden["exercises"].items():
        exercise = get(name)  # an unknown name raises, naming the known ones
        points = entry.get("points", 1) if isinstance(entry, dict) else None
        if not isinstance(points, (int, float)) or points < 0:
            raise ExerciseError(f"minidl ex grade: --hidden {path}: {name}.points must be a number >= 0, got {points!r}")
        for config in entry.get("configs", []):
            merged = dict(exercise.spec.public_cases()[0])
            unknown = set(config) - set(merged)
            merged.update(config)
            if unknown or not exercise.spec.valid(merged):
                raise ExerciseError(f"minidl ex grade: --hidden {path}: {name} configuration {json.dumps(config)} is "
                                    f"not valid" + (f" (unknown keys {sorted(unknown)})" if unknown else ""))
    return hidden


def _hidden_tests(exercise, entry, seeds):
    """(test name, check options) of one exercise's hidden tests."""
    tests = [(f"{exercise.name}: all stages, hidden seed {i + 1}", dict(seed=seed)) for i, seed in enumerate(seeds)]
    for k, config in enumerate(entry.get("configs", [])):
        merged = dict(exercise.spec.public_cases()[0])
        merged.update(config)
        tests += [(f"{exercise.name}: hidden configuration {k + 1}, seed {i + 1}", dict(seed=seed, config=merged))
                  for i, seed in enumerate(seeds)]
    return tests


def grade_submission(directory, hidden, reveal=False, out=print):
    """Grade one submission folder (holding NAME/student.py): a list of test results."""
    results = []
    examples = hidden.get("examples", DEFAULT_EXAMPLES)
    seeds = hidden.get("seeds", [0])
    for name, entry in hidden["exercises"].items():
        exercise = get(name)
        points = float(entry.get("points", 1))
        tests = _hidden_tests(exercise, entry, seeds)
        each = points / len(tests)
        path = os.path.join(directory, name, "student.py")
        missing = ("no student.py submitted" if not os.path.isfile(path)
                   else "the stub is untouched (raise NotImplementedError)" if not _is_filled(path) else None)
        module = None
        if missing is None:
            try:
                module = load_module(path, f"minidl_ex_graded_{name}")
            except Exception as error:  # a syntax error or a failing import in the student's file
                missing = f"student.py does not import: {type(error).__name__}: {error}"
        for test_name, options in tests:
            if missing is not None:
                report = {"stage": "contract", "message": missing, "diagnosis": "-"}
            else:
                report = grader.check(exercise, module, hypothesis_examples=examples, **options)
            results.append(dict(exercise=name, name=test_name, max_score=each, score=each if report is None else 0.0,
                                output=_output(report, reveal)))
        got = sum(r["score"] for r in results if r["exercise"] == name)
        out(f"{name}: {got:g} / {points:g}")
    return results


def _output(report, reveal):
    if report is None:
        return "passed"
    lines = [f"failed at stage {report['stage']}" + (f" ({report['output']})" if report.get("output") else ""),
             report["message"], f"diagnosis: {report['diagnosis']}"]
    if reveal and report.get("config") is not None:
        lines.append(f"configuration: {json.dumps(report['config'], sort_keys=True)}, seed {report.get('seed')}")
    return "\n".join(lines)


def _write_atomically(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def gradescope_json(results):
    """Gradescope's autograder results.json (score, and one entry per test)."""
    return {"score": round(sum(r["score"] for r in results), 6),
            "output": "hidden checks of minidl ex (seeds and configurations the public checks do not use)",
            "visibility": "visible",
            "tests": [{"name": r["name"], "score": round(r["score"], 6), "max_score": round(r["max_score"], 6),
                       "output": r["output"], "visibility": "visible"} for r in results]}


def junit_xml(results, suite_name="minidl-ex"):
    """JUnit XML: one testsuite per exercise, one testcase per hidden test."""
    root = ET.Element("testsuites", name=suite_name, tests=str(len(results)),
                      failures=str(sum(r["score"] < r["max_score"] for r in results)))
    for name in dict.fromkeys(r["exercise"] for r in results):
        mine = [r for r in results if r["exercise"] == name]
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(mine)),
                              failures=str(sum(r["score"] < r["max_score"] for r in mine)))
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"minidl.ex.{name}", name=r["name"])
            if r["score"] < r["max_score"]:
                failure = ET.SubElement(case, "failure", message=r["output"].splitlines()[0])
                failure.text = r["output"]
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _unzipped(path, scratch):
    """A submission zip extracted into ``scratch`` (its folder), or ``path`` itself."""
    if not zipfile.is_zipfile(path):
        return path
    folder = os.path.join(scratch, os.path.splitext(os.path.basename(path))[0])
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():  # no absolute paths or '..' out of the folder
            if os.path.isabs(member) or ".." in member.split("/"):
                raise ExerciseError(f"minidl ex grade: {path} holds an unsafe path {member!r}")
        z.extractall(folder)
    return folder


def _holds_exercises(folder):
    return any(os.path.isfile(os.path.join(folder, e.name, "student.py")) for e in exercises())


def _submissions(path, scratch):
    """[(label, folder)]: ``path`` itself when it holds NAME/student.py (or is a zip of that),
    else each sub-folder or zip in it that does (one per student)."""
    label = os.path.splitext(os.path.basename(os.path.abspath(path)))[0]
    folder = _unzipped(path, scratch)
    if _holds_exercises(folder):
        return [(label, folder)]
    found = []
    for entry in sorted(os.listdir(folder)):
        inner = _unzipped(os.path.join(folder, entry), scratch) if entry.endswith(".zip") else os.path.join(folder, entry)
        if os.path.isdir(inner) and _holds_exercises(inner):
            found.append((os.path.splitext(entry)[0], inner))
    return found or [(label, folder)]  # (nothing submitted: graded as all missing)


def grade(submissions, hidden_path, out_dir=None, reveal=False, out=print):
    """Grade every submission under ``submissions``; write results.json and junit.xml for each.

    One submission (a folder or zip holding NAME/student.py, as on Gradescope): the files go
    to ``out_dir`` (default: the current folder). Several (one sub-folder or zip per student):
    to ``out_dir/<student>/``. Returns {label: total score}.
    """
    if not os.path.exists(submissions):
        raise ExerciseError(f"minidl ex grade: {submissions}: no such folder or zip")
    hidden = read_hidden(hidden_path)
    totals = {}
    with tempfile.TemporaryDirectory() as scratch:
        found = _submissions(submissions, scratch)
        for label, folder in found:
            out(f"grading {label}")
            results = grade_submission(folder, hidden, reveal, out)
            target = out_dir or "."
            if len(found) > 1:
                target = os.path.join(target, label)
            _write_atomically(os.path.join(target, "results.json"), json.dumps(gradescope_json(results), indent=2) + "\n")
            _write_atomically(os.path.join(target, "junit.xml"), junit_xml(results))
            totals[label] = sum(r["score"] for r in results)
            possible = sum(r["max_score"] for r in results)
            out(f"{label}: {totals[label]:g} / {possible:g}; wrote {os.path.join(target, 'results.json')} and junit.xml")
    return totals


def submit(directory=".", output=None, out=print):
    """Run the public checks of every started exercise and zip the student files for upload.

    Returns the zip's path. The zip holds NAME/student.py for each started exercise and
    ``checks.json`` (the public result of each); it is written atomically.
    """
    started = [e for e in exercises() if os.path.isfile(os.path.join(directory, e.name, "student.py"))]
    if not started:
        raise ExerciseError(f"minidl ex submit: no exercise started under {directory} (run `minidl ex start NAME`)")
    summary = {}
    for exercise in started:
        path = os.path.join(directory, exercise.name, "student.py")
        if not _is_filled(path):
            summary[exercise.name] = "not started (the stub is untouched)"
        else:
            try:
                report = grader.check(exercise, load_module(path, f"minidl_ex_submit_{exercise.name}"))
            except Exception as error:
                report = {"stage": "import", "message": f"{type(error).__name__}: {error}"}
            summary[exercise.name] = grader.PASSED if report is None else f"FAILED at {report['stage']}: {report['message']}"
        out(f"{exercise.name}: {summary[exercise.name]}")
    output = output or os.path.join(directory, "submission.zip")
    folder = os.path.dirname(os.path.abspath(output))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as z:
            for exercise in started:
                z.write(os.path.join(directory, exercise.name, "student.py"), f"{exercise.name}/student.py")
            z.writestr("checks.json", json.dumps(summary, indent=2) + "\n")
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise
    out(f"wrote {output}: upload it (Gradescope), or commit your student.py files (GitHub Classroom); "
        "hidden checks run at grading")
    return output
