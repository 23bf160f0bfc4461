"""The import rules between hubprobe's folders: lower layers never import higher ones.

cgroup < sandbox < jupyter < claims < site; check uses jupyter and sandbox;
hub uses jupyter, sandbox, cgroup and claims, and nothing below imports it;
the CLI sits on top. Every ``hubprobe`` import in ``src`` counts, also those
inside functions and under ``TYPE_CHECKING``: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hubprobe"

BASE = {"errors", "units", "files", "interrupts", "address"}
#: What each unit (a folder, or a top-level module) may import, besides itself.
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "units": set(),
    "files": set(),
    "interrupts": set(),
    "address": set(),
    "profiles": BASE,
    "output": BASE | {"__init__", "profiles"},
    "cgroup": BASE,
    "sandbox": BASE | {"cgroup", "profiles"},
    "jupyter": BASE | {"cgroup", "sandbox", "profiles"},
    "probe": BASE | {"cgroup", "jupyter"},
    "notice": BASE | {"cgroup"},
    "claims": BASE | {"cgroup", "sandbox", "jupyter", "profiles", "probe", "output"},
    "site": BASE | {"claims", "profiles", "output"},
    "check": BASE | {"__init__", "cgroup", "sandbox", "jupyter", "profiles", "output"},
    # A live JupyterHub: its API, the measured profile, the local hub and its spawner.
    "hub": BASE
    | {"__init__", "cgroup", "sandbox", "jupyter", "claims", "profiles", "output", "probe"},
    "cli": set(),  # on top: anything (checked below as the exception)
    "__main__": {"cli"},
}


def unit_of(module: str) -> str:
    """``hubprobe.sandbox.cgroup1`` -> ``sandbox``; ``hubprobe`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    return (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hubprobe":  # a submodule, or a name such as __version__
                found += [
                    (node.lineno, f"hubprobe.{a.name}" if _is_module(a.name) else "hubprobe")
                    for a in node.names
                ]
            elif node.module.startswith("hubprobe."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("hubprobe")]
    return found


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_unit_has_a_rule() -> None:
    units = {
        unit_of("hubprobe." + ".".join(p.relative_to(SRC).with_suffix("").parts)) for p in modules()
    }
    assert units <= set(ALLOWED), f"add a rule for {sorted(units - set(ALLOWED))}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_lower_layers_import_nothing_higher(path: Path) -> None:
    name = "hubprobe." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    unit = unit_of(name.removesuffix(".__init__"))
    if unit == "cli":
        return
    wrong = [
        f"line {line}: {target}"
        for line, target in imports_of(path)
        if unit_of(target) != unit and unit_of(target) not in ALLOWED[unit]
    ]
    assert wrong == [], f"{name} ({unit}) may import only {sorted(ALLOWED[unit])}: {wrong}"


@pytest.mark.parametrize(
    ("module", "never"),
    [
        # The MkDocs hook reads results: it must not load a sandbox backend or the websocket client.
        ("hubprobe.site.hook", ("hubprobe.sandbox", "hubprobe.jupyter", "websocket")),
        ("hubprobe.claims.results", ("hubprobe.sandbox", "hubprobe.jupyter")),
        # An image imports the notice into every kernel: it stays small.
        ("hubprobe.notice", ("hubprobe.sandbox", "hubprobe.jupyter", "hubprobe.claims")),
        # --version and --help answer before anything heavy.
        ("hubprobe.cli", ("hubprobe.sandbox", "hubprobe.jupyter", "nbformat", "websocket")),
        # The hub's API client is used from a laptop: it needs no sandbox and no JupyterHub.
        ("hubprobe.hub.api", ("hubprobe.sandbox", "jupyterhub")),
    ],
)
def test_what_an_import_loads(module: str, never: tuple[str, ...]) -> None:
    code = f"import sys, {module}\nprint('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [m for m in loaded if m.startswith(never)] == []
