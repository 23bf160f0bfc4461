"""Sessions: lint, tests, hub_suite, guide (the main job), docs, serve, screenshots, ui, bench."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

# Material for MkDocs prints a banner about MkDocs 2 on every build.
QUIET_MKDOCS = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}

PYTHON = "3.11"

#: What the sessions need from the machine: a command (or path) -> its Debian package.
SANDBOX_TOOLS = {
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "losetup": "mount",
    "mount": "mount",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "runc": "runc",  # the oci backend: a real container, as under a hub's pods
}
BROWSER = {"/usr/bin/chromium": "chromium"}
#: The local hub's proxy: a command -> its npm package (node and npm from Debian).
HUB_PROXY = {"configurable-http-proxy": "configurable-http-proxy"}


def _system_packages(session: nox.Session, needs: dict[str, str]) -> None:
    """Install the missing Debian packages (as root with apt), or say what to install."""
    missing = sorted({pkg for tool, pkg in needs.items() if not _present(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.error(
            f"this session needs the system packages {' '.join(missing)}: install them"
            f" (on Debian or Ubuntu: sudo apt-get install -y {' '.join(missing)}) and run again"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run(
        "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing,
        external=True, env=env,
    )  # fmt: skip


def _present(tool: str) -> bool:
    return Path(tool).exists() if tool.startswith("/") else shutil.which(tool) is not None


def _npm_packages(session: nox.Session, needs: dict[str, str]) -> None:
    """Install the missing npm packages globally (as root, with npm from Debian), or say how."""
    missing = sorted({pkg for tool, pkg in needs.items() if not _present(tool)})
    if not missing:
        return
    if os.geteuid() != 0:
        session.error(
            f"this session needs {' '.join(missing)} from npm: install it"
            f" (sudo npm install -g {' '.join(missing)}) and run again"
        )
    if shutil.which("npm") is None:
        _system_packages(session, {"npm": "npm"})
    session.run("npm", "install", "-g", "--no-fund", "--no-audit", *missing, external=True)


LINTED = ["src", "tests", "noxfile.py", "bench", "tools"]
#: The versions that shape the probes' outcomes, pinned so results stay fresh (see the file).
CONSTRAINTS = ("-c", "probes/constraints.txt")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and mypy --strict on src."""
    session.install(
        "-e", ".[test]", "ruff", "mypy", "nox", *CONSTRAINTS
    )  # mypy sees every optional import
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, real sandbox tests included where a backend works (root here)."""
    _system_packages(session, SANDBOX_TOOLS | BROWSER)
    _npm_packages(session, HUB_PROXY)  # the hub tests' local JupyterHub
    session.install("-e", ".[test]", *CONSTRAINTS)
    session.run("hubprobe", "doctor", success_codes=[0, 1])
    session.run("pytest", *session.posargs)  # hub_suite tests are left out (pyproject.toml)


@nox.session(python=PYTHON)
def hub_suite(session: nox.Session) -> None:
    """Every probe in the sandbox and through a local JupyterHub: equal outcomes (minutes)."""
    _system_packages(session, SANDBOX_TOOLS)
    _npm_packages(session, HUB_PROXY)
    session.install("-e", ".[test]", *CONSTRAINTS)
    session.run("pytest", "-m", "hub_suite", "tests/hub/test_suite.py", *session.posargs)


@nox.session(python=PYTHON)
def guide(session: nox.Session) -> None:
    """The main job: run every probe in the sandbox, then build the verified site."""
    _system_packages(session, SANDBOX_TOOLS)
    session.install("-e", ".[probes,docs]", *CONSTRAINTS)
    session.run("hubprobe", "doctor")
    session.run("hubprobe", "probes", *session.posargs)
    _build_site(session)


def _build_site(session: nox.Session) -> None:
    session.run("mkdocs", "build", "--strict", env=QUIET_MKDOCS)
    session.run("python", "-m", "hubprobe.site.linkcheck", "site")
    session.log("the guide is in site/ (open site/index.html, or run `nox -s serve`)")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site strictly from the committed results, then check links and anchors."""
    session.install("-e", ".[probes,docs]", *CONSTRAINTS)
    _build_site(session)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Serve the site on 127.0.0.1:8000 with live reload (interactive use)."""
    session.install("-e", ".[probes,docs]", *CONSTRAINTS)
    session.run("mkdocs", "serve", "-a", "127.0.0.1:8000", env=QUIET_MKDOCS)


@nox.session(python=PYTHON)
def screenshots(session: nox.Session) -> None:
    """Real screenshots for the guide and README (headless Debian Chromium)."""
    _system_packages(session, SANDBOX_TOOLS | BROWSER)
    session.install("-e", ".[probes,docs,browser]", *CONSTRAINTS)
    _build_site(session)
    session.run("python", "tools/screenshots.py", *session.posargs)


@nox.session(python=PYTHON)
def ui(session: nox.Session) -> None:
    """What a student sees on an out-of-memory kill, measured in Chromium against a local hub."""
    if os.geteuid() != 0:
        session.error("this session needs root: the local hub runs each server in a container")
    _system_packages(session, SANDBOX_TOOLS | BROWSER)
    _npm_packages(session, HUB_PROXY)  # the local JupyterHub's proxy
    session.install("-e", ".[test]", *CONSTRAINTS)
    session.run("hubprobe", "doctor", success_codes=[0, 1])
    session.run("python", "tools/ui_probe.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Figures: sandbox overhead, probe-suite wall times (sandbox and hub mode), site build."""
    _system_packages(session, SANDBOX_TOOLS)
    session.install("-e", ".[probes,docs]", *CONSTRAINTS)
    session.run("python", "bench/sandbox_bench.py")
    session.run("python", "bench/probes_bench.py")
    session.run("python", "bench/site_bench.py")
    session.run("python", "bench/notice_bench.py")
    session.run("python", "bench/check_bench.py")
    if shutil.which("configurable-http-proxy") or os.geteuid() == 0:
        _npm_packages(session, HUB_PROXY)
        session.install("-e", ".[probes,hub]", *CONSTRAINTS)
        session.run("python", "bench/hub_bench.py")  # hub mode against sandbox mode
    else:
        session.log("hub bench skipped: needs root or configurable-http-proxy")
