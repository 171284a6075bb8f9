"""Coursework: exercises for the gradients of minidl, and the grader ``minidl ex``.

    minidl ex list                         the exercises, in order, with prerequisites
    minidl ex start NAME [--dir DIR]       write README.md, student.py, hints.md to DIR/NAME
    minidl ex hint NAME --level L          hint 1 (index form), 2 (matrix form), 3 (derivation)
    minidl ex check NAME [--dir DIR] [--case K] [--seed S] [--json]
    minidl ex selftest                     every stub fails, every reference passes, every
                                           mutant is caught with its diagnosis

The student override: ``use_student(dir)`` (a context manager), or the environment variable
``MINIDL_STUDENT=DIR`` read when minidl is imported, makes minidl call the student's function
(DIR/NAME/student.py) in place of the library's for every exercise started in DIR whose stub
is filled in (an untouched stub, one that still raises NotImplementedError, is skipped).
The library's code is not changed: the module attributes listed in the exercise's
``spec.OVERRIDES`` are swapped, and swapped back on exit; an exercise whose op conv2d only
calls on its textbook route (col2im) also forces that route (``spec.CONV_ALGORITHM``).
"""
import importlib
import os

from .registry import ExerciseError, exercises, get, load_module  # noqa: F401

__all__ = ["use_student", "student_module", "exercises", "get", "ExerciseError"]


def student_module(name, directory="."):
    """The student's module for exercise ``name`` (``directory/name/student.py``)."""
    path = os.path.join(directory, name, "student.py")
    if not os.path.isfile(path):
        raise ExerciseError(f"no {path}: run `minidl ex start {name} --dir {directory}` first")
    return load_module(path, f"minidl_ex_student_{name}")


def _is_filled(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin, end = text.find("# BEGIN YOUR SOLUTION"), text.find("# END YOUR SOLUTION")
    return not (0 <= begin < end and "raise NotImplementedError" in text[begin:end])


class use_student:
    """``with use_student("work"): ...`` runs minidl on the student's ops found in ``work/``."""

    def __init__(self, directory, names=None):
        self.directory, self.names = directory, names
        self.saved = []
        self.forced = None

    def __enter__(self):
        for exercise in exercises():
            if self.names is not None and exercise.name not in self.names:
                continue
            path = os.path.join(self.directory, exercise.name, "student.py")
            if not os.path.isfile(path) or not _is_filled(path):
                continue
            module = student_module(exercise.name, self.directory)
            for module_name, attribute in getattr(exercise.spec, "OVERRIDES", ()):
                try:
                    target = importlib.import_module(module_name)
                except ImportError:  # (numba missing: nothing of it to replace)
                    continue
                self.saved.append((target, attribute, getattr(target, attribute)))
                setattr(target, attribute, getattr(module, attribute))
            algorithm = getattr(exercise.spec, "CONV_ALGORITHM", None)
            if algorithm is not None and self.forced is None:  # the route that calls the student's code
                from ..backend.algorithms import conv_algorithm
                self.forced = conv_algorithm(algorithm)
        return [(target.__name__, attribute) for target, attribute, _ in self.saved]

    def __exit__(self, *exc_info):
        for target, attribute, original in reversed(self.saved):
            setattr(target, attribute, original)
        self.saved = []
        if self.forced is not None:
            self.forced.__exit__()
            self.forced = None
        return False
