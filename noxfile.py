"""Sessions: lint, tests, guide (the main job), bench. See README.md."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and mypy --strict on src."""
    session.install("-e", ".", "ruff", "mypy", "nox")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "bench")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py", "bench")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, real sandbox tests included where a backend works (root here)."""
    session.install("-e", ".[test]")
    session.run("hubprobe", "doctor", success_codes=[0, 1])
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def guide(session: nox.Session) -> None:
    """The main job: run every probe in the sandbox, write results and executed notebooks."""
    session.install("-e", ".[probes]")
    session.run("hubprobe", "doctor")
    session.run("hubprobe", "probes", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Figures: sandbox set-up/teardown and overhead; probe-suite wall times."""
    session.install("-e", ".[probes]")
    session.run("python", "bench/sandbox_bench.py")
    session.run("python", "bench/probes_bench.py")
