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
is filled in (a stub with any block that still raises NotImplementedError is skipped).
The library's code is not changed: the module attributes listed in the exercise's
``spec.OVERRIDES`` are swapped, and swapped back on exit; an exercise whose op conv2d only
calls on its textbook route (col2im) also forces that route (``spec.CONV_ALGORITHM``).
"""
import importlib
import os
import re

from .registry import ExerciseError, exercises, get, load_module  # noqa: F401

__all__ = ["use_student", "overridden", "student_module", "exercises", "get", "ExerciseError"]


def student_module(name, directory="."):
    """The student's module for exercise ``name`` (``directory/name/student.py``)."""
    path = os.path.join(directory, name, "student.py")
    if not os.path.isfile(path):
        raise ExerciseError(f"no {path}: run `minidl ex start {name} --dir {directory}` first")
    return load_module(path, f"minidl_ex_student_{name}")


def _is_filled(path):
    """True when every BEGIN/END YOUR SOLUTION block of the file is filled in (none still
    raises NotImplementedError): a half-done exercise keeps the library's code."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"# BEGIN YOUR SOLUTION(.*?)# END YOUR SOLUTION", text, flags=re.S)
    return not any("raise NotImplementedError" in block for block in blocks)


_INHERITED = object()  # an attribute the class took from its base: deleted again on exit


class overridden:
    """``with overridden(exercise, module): ...`` runs minidl with ``module``'s functions in place
    of the library's for that one exercise (what :class:`use_student` does per started exercise).

    The exercise's spec lists what is swapped: ``OVERRIDES``, pairs (module name, attribute) whose
    attribute is replaced by the student's function of the same name, and ``overrides(student)``,
    triples (object, attribute, replacement) for an op's ``Function.backward`` that calls the
    student's array function on what the Function saved.
    """

    def __init__(self, exercise, module):
        self.exercise, self.module = exercise, module
        self.saved, self.forced = [], None

    def __enter__(self):
        spec = self.exercise.spec
        swaps = []
        for module_name, attribute in getattr(spec, "OVERRIDES", ()):
            try:
                target = importlib.import_module(module_name)
            except ImportError:  # (numba missing: nothing of it to replace)
                continue
            swaps.append((target, attribute, getattr(self.module, attribute)))
        if hasattr(spec, "overrides"):
            swaps += list(spec.overrides(self.module))
        for target, attribute, replacement in swaps:
            self.saved.append((target, attribute, vars(target).get(attribute, _INHERITED)))
            setattr(target, attribute, replacement)
        algorithm = getattr(spec, "CONV_ALGORITHM", None)
        if algorithm is not None:  # the route that calls the student's code
            from ..backend.algorithms import conv_algorithm
            self.forced = conv_algorithm(algorithm)
            self.forced.__enter__()
        return [(getattr(t, "__name__", repr(t)), a) for t, a, _ in self.saved]

    def __exit__(self, *exc_info):
        for target, attribute, original in reversed(self.saved):
            if original is _INHERITED:
                delattr(target, attribute)
            else:
                setattr(target, attribute, original)
        self.saved = []
        if self.forced is not None:
            self.forced.__exit__()
            self.forced = None
        return False


class use_student:
    """``with use_student("work"): ...`` runs minidl on the student's ops found in ``work/``.

    Returns the list of (module or class, attribute) swapped. Exercises whose stub is untouched
    (still ``raise NotImplementedError``) keep the library's code.
    """

    def __init__(self, directory, names=None):
        self.directory, self.names = directory, names
        self.active = []

    def started(self):
        """The exercises started in the directory whose solution is filled in."""
        found = []
        for exercise in exercises():
            if self.names is not None and exercise.name not in self.names:
                continue
            path = os.path.join(self.directory, exercise.name, "student.py")
            if os.path.isfile(path) and _is_filled(path):
                found.append(exercise)
        return found

    def __enter__(self):
        swapped = []
        try:
            for exercise in self.started():
                context = overridden(exercise, student_module(exercise.name, self.directory))
                swapped += context.__enter__()
                self.active.append(context)
        except BaseException:
            self.__exit__()
            raise
        return swapped

    def __exit__(self, *exc_info):
        for context in reversed(self.active):
            context.__exit__()
        self.active = []
        return False
