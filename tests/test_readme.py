"""The README's two commands are the ones CI runs, and its example runs as printed."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as fh:
        return fh.read()


def readme_commands():
    """The indented shell lines under "## Two commands" that install something."""
    section = _read("README.md").split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines()
            if line.startswith("    ") and line.strip().startswith("pip install")]


def ci_commands():
    """What .ci/run runs after its set-up (the lines after activating the environment)."""
    lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    after = lines[lines.index("source .venv/bin/activate") + 1:]
    return [line for line in after if line and not line.startswith("#")]


def test_ci_runs_exactly_the_readmes_two_commands():
    assert readme_commands() == ["pip install -e . && unet demo",
                                 'pip install -e ".[test,dist]" && python -m pytest']
    assert ci_commands() == readme_commands()


def test_the_test_extra_brings_the_pytorch_the_tests_compare_with():
    extra = re.search(r"^test = \[(.*?)\]", _read("pyproject.toml"), re.M).group(1)
    assert '"torch==2.13.0"' in extra and '"pytest"' in extra and '"hypothesis"' in extra


def test_the_readmes_example_runs():
    example = _read("README.md").split("```python", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(example, "README example", "exec"), namespace)
    assert namespace["loss"].item() > 0
    assert namespace["model"](namespace["x"]).shape == (4, 2, 16, 16)
    # zero_grad() sets the gradients to None, as PyTorch's default does
    assert all(p.grad is None for p in namespace["model"].parameters())


def test_the_readme_stays_short_and_self_contained():
    text = _read("README.md")
    assert len(text.splitlines()) < 150
    for outside in ("../shared", "/work/", "issue "):
        assert outside not in text, outside
