"""The ``minidl`` console script: ``minidl ex list|start|hint|check|milestone|submit|grade|selftest``.

Bad input (an unknown exercise, a missing student file, a bad option) prints one line and
exits with status 2; a failed check exits with status 1.
"""
import argparse
import json
import os
import shlex
import shutil
import sys

from .registry import STUDENT_FILES, ExerciseError, exercises, get


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _level(text):
    if text not in ("1", "2", "3"):
        raise argparse.ArgumentTypeError(f"must be 1, 2 or 3, got {text}")
    return int(text)


def _config(text):
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text}")
    return value


def build_parser():
    parser = _Parser(prog="minidl", description="minidl's command line (coursework: `minidl ex`)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ex = commands.add_parser("ex", help="coursework exercises")
    sub = ex.add_subparsers(dest="action", required=True, parser_class=_Parser)
    sub.add_parser("list", help="the exercises in order, with prerequisites")
    start = sub.add_parser("start", help="write the student files of an exercise")
    start.add_argument("name")
    start.add_argument("--dir", default=".", help="where DIR/NAME/ is created (default .)")
    hint = sub.add_parser("hint", help="a hint: 1 index form, 2 matrix form, 3 the derivation")
    hint.add_argument("name")
    hint.add_argument("--level", type=_level, default=1)
    check = sub.add_parser("check", help="run the public checks on DIR/NAME/student.py")
    check.add_argument("name")
    check.add_argument("--dir", default=".")
    check.add_argument("--case", type=int, default=None, help="only public case K")
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    check.add_argument("--config", type=_config, default=None, help="one configuration (JSON), as printed by a failure")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    milestone = sub.add_parser("milestone", help="train the demo U-Net on your own ops (Dice >= 0.9)")
    milestone.add_argument("name", choices=["unet"])
    milestone.add_argument("--dir", default=".", help="where your exercises are (default .)")
    milestone.add_argument("--out", default=None, help="training output folder (default DIR/milestone_unet)")
    milestone.add_argument("--seed", type=int, default=0)
    milestone.add_argument("--epochs", type=int, default=None, help="epochs (default: the demo's)")
    submit = sub.add_parser("submit", help="run the public checks and zip your student files for upload")
    submit.add_argument("--dir", default=".")
    submit.add_argument("--out", default=None, help="the zip (default DIR/submission.zip)")
    grade = sub.add_parser("grade", help="instructors: hidden checks -> results.json (Gradescope) + junit.xml")
    grade.add_argument("submissions", help="a submission (folder or zip holding NAME/student.py), or a folder of them")
    grade.add_argument("--hidden", required=True, help="the hidden file (JSON: seeds, configurations, points)")
    grade.add_argument("--out", default=None, help="where results.json and junit.xml go (default .)")
    grade.add_argument("--reveal", action="store_true", help="show the failing hidden configuration and seed")
    selftest = sub.add_parser("selftest", help="instructors: prove the grader on every exercise")
    selftest.add_argument("names", nargs="*")
    selftest.add_argument("--examples", type=int, default=30, help="hypothesis examples per check")
    return parser


def cmd_list():
    for e in exercises():
        needs = ", ".join(e.spec.PREREQUISITES) or "-"
        print(f"{e.order:02d}  {e.name:24s} {e.spec.TITLE}   (needs: {needs})")


def cmd_start(name, directory):
    exercise = get(name)
    target = os.path.join(directory, name)
    os.makedirs(target, exist_ok=True)
    for filename in STUDENT_FILES:
        path = os.path.join(target, filename)
        if os.path.exists(path):
            print(f"kept {path} (exists: your work is never overwritten)")
            continue
        shutil.copyfile(exercise.path(filename), path)
        print(f"wrote {path}")
    print(f"next: edit {os.path.join(target, 'student.py')}, then `minidl ex check {name} --dir {directory}`")


def cmd_check(args):
    from . import grader, student_module
    exercise = get(args.name)
    module = student_module(args.name, args.dir)
    if args.config is not None:
        merged = dict(exercise.spec.public_cases()[0])
        unknown = set(args.config) - set(merged)
        if unknown:
            raise ExerciseError(f"minidl ex check: --config has unknown keys {sorted(unknown)}; known: {sorted(merged)}")
        merged.update(args.config)
        if not exercise.spec.valid(merged):
            raise ExerciseError(f"minidl ex check: --config {json.dumps(args.config)} is not a valid configuration")
        args.config = merged
    report = grader.check(exercise, module, seed=args.seed, case=args.case, config=args.config)
    if report is not None and args.dir != ".":
        report["command"] += f" --dir {shlex.quote(args.dir)}"  # the command reproduces from where it was run
    if args.json:
        print(json.dumps({"exercise": args.name, "passed": report is None, "failure": report}, indent=2))
    elif report is None:
        print(f"{args.name}: {grader.PASSED}")
    else:
        print(grader.format_failure(args.name, report))
    return 0 if report is None else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.action == "list":
            cmd_list()
        elif args.action == "start":
            cmd_start(args.name, args.dir)
        elif args.action == "hint":
            print(get(args.name).hint(args.level))
        elif args.action == "check":
            return cmd_check(args)
        elif args.action == "milestone":
            from .milestone import milestone_unet
            passed, _, _ = milestone_unet(args.dir, args.out, args.seed, args.epochs,
                                          progress=sys.stderr.isatty())
            return 0 if passed else 1
        elif args.action == "submit":
            from .grading import submit
            submit(args.dir, args.out)
        elif args.action == "grade":
            from .grading import grade
            grade(args.submissions, args.hidden, args.out, args.reveal)
        elif args.action == "selftest":
            from .selftest import selftest
            _, misses = selftest(args.names or None, examples=args.examples)
            return 1 if misses else 0
    except ExerciseError as error:
        print(f"minidl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
