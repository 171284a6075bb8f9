"""``minidl ex selftest``: the grader proves itself on every exercise."""
from . import grader
from .registry import exercises, load_module, module_from_source


def selftest(names=None, examples=30, out=print):
    """Count (passed, failed) claims: stub fails, reference passes, each mutant caught with its diagnosis."""
    passed, misses = 0, []
    for exercise in exercises():
        if names and exercise.name not in names:
            continue
        stub = load_module(exercise.path("student.py"), f"minidl_ex_stub_{exercise.name}")
        report = grader.check(exercise, stub, hypothesis_examples=examples)
        ok = report is not None and "not implemented" in report["message"]
        (passed := passed + 1) if ok else misses.append(f"{exercise.name}: the stub did not fail as unimplemented")
        report = grader.check(exercise, exercise.reference(), hypothesis_examples=examples)
        if report is None:
            passed += 1
        else:
            misses.append(f"{exercise.name}: the reference fails: {report['message']}")
        source = exercise.text("reference.py")
        caught = 0
        for i, (line, replacement, diagnosis) in enumerate(exercise.spec.MUTANTS):
            if source.count(line) != 1:
                misses.append(f"{exercise.name} mutant {i}: the line {line!r} is not once in reference.py")
                continue
            mutant = module_from_source(source.replace(line, replacement), f"minidl_ex_mutant_{exercise.name}_{i}")
            report = grader.check(exercise, mutant, hypothesis_examples=examples)
            if report is None:
                misses.append(f"{exercise.name} mutant {i} ({replacement.strip()}): not caught")
            elif diagnosis not in report["diagnosis"]:
                misses.append(f"{exercise.name} mutant {i} ({replacement.strip()}): caught at stage "
                              f"{report['stage']} but diagnosed {report['diagnosis']!r}, expected {diagnosis!r}")
            else:
                caught += 1
        passed += caught
        out(f"{exercise.name}: stub fails, reference passes, {caught}/{len(exercise.spec.MUTANTS)} mutants caught with their diagnosis")
    for miss in misses:
        out("MISS " + miss)
    out(f"selftest: {passed} passed, {len(misses)} missed")
    return passed, misses
