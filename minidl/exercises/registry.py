"""The exercise catalog: one folder per exercise under ``catalog/<NN_name>/``.

Each folder holds
    README.md     the statement (shapes and notation as docs/gradients)
    student.py    the stub the student fills in: solution lines between ``# BEGIN YOUR SOLUTION``
                  and ``# END YOUR SOLUTION`` (``raise NotImplementedError`` until then)
    reference.py  the solution (never copied to the student)
    hints.md      three levels, each under a ``## Level L`` heading: the index form, the matrix
                  form, the derivation page of docs/gradients
    spec.py       how to check it (read by the grader, see grader.py): ``NAME``, ``TITLE``,
                  ``PREREQUISITES``, ``FUNCTIONS``, ``public_cases()``, ``configs()`` (a
                  hypothesis strategy), ``make(config, rng)``, ``run(module, inputs)``,
                  ``VALUES``, ``GRADIENTS``, optional ``diagnose(...)``, ``OVERRIDES`` and
                  ``MUTANTS``: (line of reference.py, its replacement, expected diagnosis)
"""
import importlib.util
import os
import re

CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog")
STUDENT_FILES = ("README.md", "student.py", "hints.md")


class ExerciseError(ValueError):
    """Bad input to ``minidl ex`` (an unknown exercise, a missing file): one line, exit 2."""


class Exercise:
    """One folder of the catalog."""

    def __init__(self, folder):
        self.folder = folder
        self.order = int(os.path.basename(folder).split("_", 1)[0])
        self.spec = load_module(os.path.join(folder, "spec.py"), f"minidl_ex_spec_{os.path.basename(folder)}")
        self.name = self.spec.NAME

    def path(self, filename):
        return os.path.join(self.folder, filename)

    def text(self, filename):
        with open(self.path(filename), encoding="utf-8") as f:
            return f.read()

    def hint(self, level):
        """The text of hint ``level`` (1, 2 or 3)."""
        parts = re.split(r"^## Level (\d)[^\n]*\n", self.text("hints.md"), flags=re.M)
        levels = {int(parts[i]): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
        if level not in levels:
            raise ExerciseError(f"minidl ex hint: {self.name} has hint levels {sorted(levels)}, got {level}")
        return levels[level]

    def reference(self):
        return load_module(self.path("reference.py"), f"minidl_ex_ref_{self.name}")


def load_module(path, name):
    """Import the Python file ``path`` as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_from_source(source, name):
    """A module made from the text ``source`` (a mutant of a reference)."""
    module = type(os)(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


_exercises = None


def exercises():
    """Every exercise, in course order."""
    global _exercises
    if _exercises is None:
        folders = sorted(os.path.join(CATALOG, d) for d in os.listdir(CATALOG)
                         if re.match(r"\d\d_", d) and os.path.isdir(os.path.join(CATALOG, d)))
        _exercises = sorted((Exercise(f) for f in folders), key=lambda e: e.order)
    return _exercises


def get(name):
    """The exercise called ``name`` (ExerciseError naming the known ones otherwise)."""
    for exercise in exercises():
        if exercise.name == name:
            return exercise
    raise ExerciseError(f"unknown exercise {name!r}; known: {', '.join(e.name for e in exercises())}")
