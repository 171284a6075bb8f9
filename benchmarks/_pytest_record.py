"""A pytest plugin for the GPU suite: every test's outcome as it happens, and a time budget.

Loaded with ``-p benchmarks._pytest_record`` by benchmarks/gpu_suite.py, in a pytest subprocess.
It appends one JSON line per reported test phase to the file named by MINIDL_SUITE_RECORD (so a
run that is killed still leaves what it did), and stops the session once the wall-clock time
MINIDL_SUITE_DEADLINE (seconds since the epoch) has passed; the tests not yet run are then
counted as "not run" by the suite, never as passed.
"""
import json
import os
import time

_PATH = os.environ.get("MINIDL_SUITE_RECORD")
_DEADLINE = float(os.environ.get("MINIDL_SUITE_DEADLINE", "inf"))


def _write(entry):
    if _PATH:
        with open(_PATH, "a") as f:
            f.write(json.dumps(entry) + "\n")


def _text(longrepr, limit=3000):
    if longrepr is None:
        return None
    text = str(longrepr)
    return text if len(text) <= limit else text[:limit // 3] + "\n...\n" + text[-2 * limit // 3:]


def pytest_collection_finish(session):
    _write({"event": "collected", "count": len(session.items)})


def pytest_collectreport(report):
    if report.failed:
        _write({"event": "collect_error", "nodeid": report.nodeid, "longrepr": _text(report.longrepr)})


def pytest_runtest_logreport(report):
    # a test's outcome: its call phase, or a setup that failed or skipped, or a teardown error
    if report.when == "call" or report.outcome != "passed":
        entry = {"event": "test", "nodeid": report.nodeid, "when": report.when,
                 "outcome": report.outcome, "duration": round(report.duration, 4)}
        if report.outcome == "failed":
            entry["longrepr"] = _text(report.longrepr)
        elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            entry["reason"] = str(report.longrepr[-1])
        _write(entry)


def pytest_runtest_teardown(item, nextitem):
    if nextitem is not None and time.time() > _DEADLINE:
        item.session.shouldstop = "the GPU suite's time budget for the op suite is spent"


def pytest_sessionfinish(session, exitstatus):
    _write({"event": "finish", "exitstatus": int(exitstatus), "shouldstop": str(session.shouldstop or "")})
