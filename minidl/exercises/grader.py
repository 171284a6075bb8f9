"""``minidl ex check``: the stages, in order, stopping at the first failing one.

    contract     shapes and dtypes of every output equal the reference's (float64 and float32
                 inputs); no input is written into
    forward      every value the student computes (spec.VALUES) against the reference, in float64
    gradient     every gradient (spec.GRADIENTS) checked in float64 against central differences
                 of the forward along a random direction; if that fails, element by element
                 against the reference, to say where
    hypothesis   generated configurations (spec.configs()), shrunk to the smallest failing one
    reuse        graphs that use a node twice (only where the spec has ``reuse_cases``)
    devices      float32 inputs, non-contiguous inputs, and minidl's own op running on the
                 student's code (``spec.engine``) on every CPU kernel backend (NumPy arrays:
                 the student's code is NumPy code, so the CPU is its one device)

Comparisons are made in float64 with a tight tolerance; float32 inputs are only checked for
the output dtype and a float32-sized tolerance, so a rounding difference is never a bug.
A failure is a dict (``--json`` prints it); :func:`format_failure` writes it for people.
"""
import json

import numpy as np

from .registry import ExerciseError

STAGES = ("contract", "forward", "gradient", "hypothesis", "reuse", "devices")
PASSED = "public checks passed \u2014 hidden checks run at grading"
RTOL64, ATOL64 = 1e-7, 1e-9      # float64: a correct solution is far inside this
RTOL32 = 2e-3                    # float32 vs the float64 reference (relative to the scale)


class StageFailure(Exception):
    def __init__(self, report):
        super().__init__(report.get("message", ""))
        self.report = report


def _as_dict(outputs, spec):
    if isinstance(outputs, dict):
        return outputs
    names = list(spec.VALUES) + list(spec.GRADIENTS)
    if not isinstance(outputs, tuple):
        outputs = (outputs,)
    return dict(zip(names, outputs))


def call(spec, module, inputs):
    """Run ``spec.run(module, copies of inputs)``; the outputs by name, and which inputs changed."""
    copies = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}
    outputs = spec.run(module, copies)
    changed = [k for k, v in inputs.items()
               if isinstance(v, np.ndarray) and not np.array_equal(v, copies[k], equal_nan=True)]
    return {k: np.asarray(v) for k, v in outputs.items()}, changed


def error_of(got, want, rtol=RTOL64, atol=ATOL64):
    """(ok, largest error, its index) of ``got`` against ``want`` (same shape)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False, float("inf"), None
    if got.size == 0:
        return True, 0.0, None
    scale = max(1.0, float(np.max(np.abs(want))) if np.all(np.isfinite(want)) else 1.0)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want)
    err = np.where(np.isnan(err), np.inf, err)
    index = np.unravel_index(int(np.argmax(err)), err.shape)
    largest = float(err[index])
    ok = bool(np.all(err <= atol + rtol * scale))
    return ok, largest, tuple(int(i) for i in index)


def side_by_side(got, want, index, radius=2):
    """A small slice around ``index`` of the last two axes: rows 'got | want'."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if index is None or got.ndim == 0:
        return [f"got {got!r}", f"want {want!r}"]
    lead = tuple(index[:-2]) if got.ndim >= 2 else ()
    g2 = got[lead] if got.ndim >= 2 else got[None]
    w2 = want[lead] if want.ndim >= 2 else want[None]
    r = index[-2] if got.ndim >= 2 else 0
    c = index[-1]
    r0, r1 = max(0, r - radius), min(g2.shape[0], r + radius + 1)
    c0, c1 = max(0, c - radius), min(g2.shape[1], c + radius + 1)
    where = f"[{', '.join(map(str, lead)) + ', ' if lead else ''}{r0}:{r1}, {c0}:{c1}]" if got.ndim >= 2 else f"[{c0}:{c1}]"
    lines = [f"slice {where}   got | want"]
    for i in range(r0, r1):
        left = " ".join(f"{v:9.4g}" for v in g2[i, c0:c1])
        right = " ".join(f"{v:9.4g}" for v in w2[i, c0:c1])
        lines.append(f"  {left} | {right}")
    return lines


# ---- diagnoses: what the pattern of an error says --------------------------------------------

def generic_diagnosis(got, want, inputs, config):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        swapped = [(a, b) for a in range(got.ndim) for b in range(a + 1, got.ndim)
                   if got.ndim == want.ndim and got.shape == tuple(np.swapaxes(np.empty(want.shape), a, b).shape)]
        if swapped:
            return (f"the result is the transpose of the expected one (axes {swapped[0][0]} and {swapped[0][1]} "
                    f"swapped: got shape {got.shape}, expected {want.shape})")
        return f"wrong shape: got {got.shape}, expected {want.shape}"
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
        return "non-finite values (inf/nan) where the answer is finite: an overflow or a division by zero"
    if got.ndim >= 2 and got.shape[-1] == got.shape[-2] and np.allclose(np.swapaxes(got, -1, -2), want, rtol=1e-6, atol=1e-9) \
            and not np.allclose(got, want, rtol=1e-6, atol=1e-9):
        return "the result is the transpose of the expected one"
    if np.allclose(got, -want, rtol=1e-6, atol=1e-9):
        return "wrong sign: the result is the negative of the expected one"
    n = config.get("N") if isinstance(config, dict) else None
    mask = np.abs(want) > 1e-12
    if n and n > 1 and mask.any():
        ratio = got[mask] / want[mask]
        if np.allclose(ratio, ratio.flat[0], rtol=1e-6):
            r = float(ratio.flat[0])
            if abs(r - n) < 1e-6 or abs(r - 1 / n) < 1e-9:
                return f"off by a factor equal to the batch size (N = {n}): a sum over the batch is missing or extra, or a mean where a sum belongs"
    if mask.any():
        ratio = got[mask] / want[mask]
        if np.allclose(ratio, ratio.flat[0], rtol=1e-6):
            return f"off by a constant factor {float(ratio.flat[0]):.6g}"
    return None


def variant_diagnosis(spec, module, config, seed):
    """Which single setting makes the failure go away: ``only stride > 1 fails -> offsets``."""
    for keys, default, meaning in getattr(spec, "VARIANTS", ()):
        keys = keys if isinstance(keys, tuple) else (keys,)  # settings reset together
        value = default(config) if callable(default) else default
        if all(k in config for k in keys) and any(config[k] != value for k in keys):
            trial = dict(config)
            trial.update({k: (default(config) if callable(default) else default) for k in keys})
            if spec.valid(trial) and case_passes(spec, module, trial, seed):
                return meaning
    return None


def case_passes(spec, module, config, seed):
    rng = np.random.default_rng(seed)
    inputs = spec.make(config, rng)
    ref = spec.reference_module()
    try:
        got, changed = call(spec, module, inputs)
    except Exception:
        return False
    want, _ = call(spec, ref, inputs)
    if changed:
        return False
    return all(error_of(got.get(k), want[k])[0] if k in got else False for k in want)


# ---- the stages ------------------------------------------------------------------------------

class Checker:
    """Runs the stages of one exercise on one student module."""

    def __init__(self, exercise, module, seed=0, case=None, config=None, hypothesis_examples=60):
        self.exercise, self.spec, self.module = exercise, exercise.spec, module
        self.seed, self.case, self.config = seed, case, config
        self.examples = hypothesis_examples
        self.spec.reference_module = exercise.reference
        self.ref = exercise.reference()
        if hasattr(self.spec, "REFERENCE"):  # a spec whose forward is the reference's own
            self.spec.REFERENCE = self.ref

    def command(self, case=None, config=None):
        cmd = f"minidl ex check {self.exercise.name}"
        if config is not None:
            cmd += f" --config '{json.dumps(config, sort_keys=True)}'"
        elif case is not None:
            cmd += f" --case {case}"
        return cmd + f" --seed {self.seed}"

    def fail(self, stage, config, case, message, output=None, got=None, want=None, inputs=None,
             diagnosis=None, **extra):
        report = dict(stage=stage, output=output, case=case, seed=self.seed, config=config,
                      command=self.command(case, config if case is None else None), message=message)
        if got is not None and want is not None:
            ok, largest, index = error_of(got, want)
            report.update(max_error=largest, index=list(index) if index else None,
                          slice=side_by_side(got, want, index) if index is not None and np.shape(got) == np.shape(want) else [])
            if diagnosis is None:
                diagnosis = self.diagnose(output, got, want, inputs, config)
        report["diagnosis"] = diagnosis or "no known pattern; compare the slice with your index formula"
        report["hint"] = f"minidl ex hint {self.exercise.name} --level 1"
        report["hint_text"] = "level 1: the index form; 2: the matrix form; 3: the derivation"
        report.update(extra)
        raise StageFailure(report)

    def diagnose(self, output, got, want, inputs, config):
        """From the most telling pattern to the least: a setting whose default makes the error
        go away, the exercise's own patterns, then the generic ones (sign, factor, transpose)."""
        special = getattr(self.spec, "diagnose", None)
        if special is not None and np.shape(got) == np.shape(want):
            found_special = special(output, np.asarray(got, np.float64), np.asarray(want, np.float64), inputs, config)
            if found_special and getattr(self.spec, "SPECIAL_FIRST", False):  # an exact pattern
                return found_special
        else:
            found_special = None
        found = variant_diagnosis(self.spec, self.module, config, self.seed) or found_special
        if found:
            return found
        return generic_diagnosis(got, want, inputs, config)

    def diagnose_shape(self, output, got, want, inputs, config):
        """A wrong shape: the exercise's own pattern (``spec.diagnose_shape``), else the generic one."""
        special = getattr(self.spec, "diagnose_shape", None)
        found = special(output, got.shape, want.shape, inputs, config) if special is not None else None
        return found or generic_diagnosis(got, want, inputs, config)

    def cases(self):
        public = list(enumerate(self.spec.public_cases()))
        if self.config is not None:
            return [(None, self.config)]
        if self.case is not None:
            if not 0 <= self.case < len(public):
                raise ExerciseError(f"minidl ex check: {self.exercise.name} has public cases 0..{len(public) - 1}, got --case {self.case}")
            return [public[self.case]]
        return public

    def _run(self, stage, case, config, inputs, module=None):
        try:
            return call(self.spec, module or self.module, inputs)
        except NotImplementedError:
            self.fail(stage, config, case, "not implemented yet (raise NotImplementedError)",
                      diagnosis="the stub is untouched: write your solution between the BEGIN/END markers")
        except Exception as error:  # the student's code crashed: say where
            self.fail(stage, config, case, f"your code raised {type(error).__name__}: {error}",
                      diagnosis=variant_diagnosis(self.spec, self.module, config, self.seed) or
                      f"an exception in your code ({type(error).__name__}); for a shape error compare the shapes in the README")

    def contract(self):
        for case, config in self.cases():
            for dtype in (np.float64, np.float32):
                inputs = self.spec.make(config, np.random.default_rng(self.seed))
                inputs = {k: (v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
                          for k, v in inputs.items()}
                got, changed = self._run("contract", case, config, inputs)
                want, _ = call(self.spec, self.ref, inputs)
                if changed:
                    self.fail("contract", config, case, f"your code wrote into its input(s) {', '.join(changed)}",
                              diagnosis="inputs must not be mutated: work on a copy (np.zeros_like, x.copy())")
                for name, w in want.items():
                    if name not in got:
                        self.fail("contract", config, case, f"output {name} is missing", output=name)
                    g = got[name]
                    if g.shape != w.shape:
                        self.fail("contract", config, case,
                                  f"{name}: shape {g.shape}, expected {w.shape} ({np.dtype(dtype).name} inputs)",
                                  output=name, diagnosis=self.diagnose_shape(name, g, w, inputs, config))
                    if g.dtype != w.dtype:
                        self.fail("contract", config, case,
                                  f"{name}: dtype {g.dtype}, expected {w.dtype} ({np.dtype(dtype).name} inputs)",
                                  output=name, diagnosis="keep the input's dtype: allocate with dtype=x.dtype")

    def forward(self, cases=None, stage="forward"):
        for case, config in cases or self.cases():
            inputs = self.spec.make(config, np.random.default_rng(self.seed))
            got, _ = self._run(stage, case, config, inputs)
            want, _ = call(self.spec, self.ref, inputs)
            for name in self.spec.VALUES:
                ok, largest, _ = error_of(got[name], want[name])
                if not ok:
                    self.fail(stage, config, case, f"{name} differs from the float64 reference by {largest:.3g}",
                              output=name, got=got[name], want=want[name], inputs=inputs)

    def gradient(self, cases=None, stage="gradient"):
        for case, config in cases or self.cases():
            rng = np.random.default_rng(self.seed)
            inputs = self.spec.make(config, rng)
            got, _ = self._run(stage, case, config, inputs)
            want, _ = call(self.spec, self.ref, inputs)
            if not getattr(self.spec, "gradcheckable", lambda c: True)(config):
                for name in self.spec.GRADIENTS:  # (no finite differences at ties of a max)
                    if not error_of(got[name], want[name])[0]:
                        self.fail(stage, config, case, f"{name} differs from the float64 reference",
                                  output=name, got=got[name], want=want[name], inputs=inputs)
                continue
            for name, (wrt, forward, upstream) in self.spec.GRADIENTS.items():
                g = got[name]
                x = inputs[wrt]
                v = rng.standard_normal(x.shape)
                dy = inputs[upstream]

                def loss(xv):
                    changed = dict(inputs)
                    changed[wrt] = xv
                    return float(np.sum(dy * forward(changed, config)))
                h = 1e-6
                numeric = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
                analytic = float(np.sum(np.asarray(g, np.float64) * v)) if g.shape == x.shape else float("nan")
                if not abs(numeric - analytic) <= 1e-6 * (abs(numeric) + abs(analytic)) + 1e-7:
                    self.fail(stage, config, case,
                              f"{name} fails the float64 gradient check along a random direction: "
                              f"<{name}, v> = {analytic:.8g}, finite differences say {numeric:.8g}",
                              output=name, got=g, want=want[name], inputs=inputs)

    def hypothesis(self):
        if self.case is not None or self.config is not None:
            return
        import random

        from hypothesis import HealthCheck, Verbosity, find, settings
        from hypothesis.errors import NoSuchExample

        strategy = self.spec.configs().filter(self.spec.valid)
        try:
            smallest = find(strategy, lambda c: not case_passes(self.spec, self.module, c, self.seed),
                            settings=settings(max_examples=self.examples, database=None, deadline=None,
                                              verbosity=Verbosity.quiet,
                                              suppress_health_check=list(HealthCheck)),
                            random=random.Random(self.seed))
        except NoSuchExample:
            return
        config = dict(smallest)
        for stage in (self.contract_one, self.forward, self.gradient):
            stage([(None, config)], stage="hypothesis")
        inputs = self.spec.make(config, np.random.default_rng(self.seed))
        got, _ = self._run("hypothesis", None, config, inputs)
        want, _ = call(self.spec, self.ref, inputs)
        for name in want:
            if not error_of(got[name], want[name])[0]:
                self.fail("hypothesis", config, None, f"{name} is wrong for this generated configuration",
                          output=name, got=got[name], want=want[name], inputs=inputs)

    def contract_one(self, cases, stage):
        for case, config in cases:
            inputs = self.spec.make(config, np.random.default_rng(self.seed))
            got, changed = self._run(stage, case, config, inputs)
            want, _ = call(self.spec, self.ref, inputs)
            if changed:
                self.fail(stage, config, case, f"your code wrote into its input(s) {', '.join(changed)}",
                          diagnosis="inputs must not be mutated: work on a copy")
            for name, w in want.items():
                if got[name].shape != w.shape:
                    self.fail(stage, config, case, f"{name}: shape {got[name].shape}, expected {w.shape}",
                              output=name, diagnosis=self.diagnose_shape(name, got[name], w, inputs, config))

    def reuse(self):
        cases = getattr(self.spec, "reuse_cases", None)
        if cases is not None:
            self.forward(list(enumerate(cases())), stage="reuse")
            self.gradient(list(enumerate(cases())), stage="reuse")

    def float32(self):
        """float32 inputs: right within float32 rounding (relative to the float64 answer)."""
        for case, config in self.cases():
            inputs = self.spec.make(config, np.random.default_rng(self.seed))
            single = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
                      for k, v in inputs.items()}
            got, _ = self._run("devices", case, config, single)
            want, _ = call(self.spec, self.ref, inputs)  # the float64 answer
            for name in want:
                ok, largest, index = error_of(got[name], want[name], rtol=RTOL32, atol=RTOL32)
                if not ok:
                    self.fail("devices", config, case, f"{name}: float32 inputs give an error of {largest:.3g}, "
                              f"far beyond float32 rounding (the float64 inputs pass)",
                              output=name, got=got[name], want=want[name], inputs=inputs)

    def devices(self):
        # The student's kernels take NumPy arrays: the CPU is their one device. float32 inputs,
        # the layouts a device may hand over (non-contiguous arrays), and minidl's own op running
        # on the student's code on every kernel backend are checked here.
        self.float32()
        self.engine()
        for case, config in self.cases()[:1]:
            inputs = self.spec.make(config, np.random.default_rng(self.seed))
            strided = {k: (np.asfortranarray(v) if isinstance(v, np.ndarray) and v.ndim >= 2 else v)
                       for k, v in inputs.items()}
            got, _ = self._run("devices", case, config, strided)
            want, _ = call(self.spec, self.ref, inputs)
            for name in want:
                if not error_of(got[name], want[name])[0]:
                    self.fail("devices", config, case, f"{name} is wrong for non-contiguous (Fortran-order) inputs on cpu",
                              output=name, got=got[name], want=want[name], inputs=inputs)

    def engine(self):
        """Inside minidl: with the student's functions swapped in (the override of ``minidl ex
        start``), minidl's own op (``spec.engine``: forward and autograd backward through the
        public API) gives the library's answer, on every CPU kernel backend."""
        through = getattr(self.spec, "engine", None)
        if through is None:
            return
        import minidl
        from minidl.backend import available_backends, use_backend

        from . import overridden
        for case, config in self.cases()[:3]:
            inputs = self.spec.make(config, np.random.default_rng(self.seed))
            for backend in available_backends():
                with use_backend(backend):
                    want = through(minidl, inputs)
                    try:
                        with overridden(self.exercise, self.module):
                            got = through(minidl, inputs)
                    except Exception as error:
                        self.fail("devices", config, case, f"inside minidl (cpu, {backend} kernels) your code raised "
                                  f"{type(error).__name__}: {error}",
                                  diagnosis="minidl hands your function the arrays its op saved: check the README's "
                                  "shapes and dtypes, and that you return new arrays")
                for name in want:
                    if not error_of(got[name], want[name])[0]:
                        self.fail("devices", config, case, f"{name} through minidl's op (cpu, {backend} kernels) "
                                  f"differs from the library's when your code is swapped in",
                                  output=name, got=got[name], want=want[name], inputs=inputs)

    def run(self):
        """None if every stage passes, else the failure report of the first failing stage."""
        for stage in STAGES:
            try:
                getattr(self, stage)()
            except StageFailure as failure:
                return failure.report
        return None


def check(exercise, module, **options):
    with np.errstate(all="ignore"):  # an overflow is reported by the diagnosis, not as a warning
        return Checker(exercise, module, **options).run()


def format_failure(name, report):
    lines = [f"FAILED {name}: stage {report['stage']}" + (f", {report['output']}" if report.get("output") else ""),
             f"  {report['message']}",
             f"  case: {report['case'] if report['case'] is not None else 'generated'}   seed: {report['seed']}",
             f"  configuration: {json.dumps(report['config'], sort_keys=True)}",
             f"  reproduce: {report['command']}"]
    if report.get("max_error") is not None:
        lines.append(f"  largest error: {report['max_error']:.4g} at index {tuple(report['index']) if report['index'] else '-'}")
        lines += ["  " + line for line in report.get("slice", [])]
    lines.append(f"  DIAGNOSIS: {report['diagnosis']}")
    lines.append(f"  next hint: {report['hint']}  ({report['hint_text']})")
    return "\n".join(lines)
