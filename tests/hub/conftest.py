"""One real local JupyterHub for the hub tests, with its servers in hubprobe's container.

Started once per test session (a server start costs ~10 s) with a small
profile whose node values are this machine's, so that a measured profile
can equal it in every value. Nothing of it may survive the session.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from hubtools import running_hub, write_profile

from hubprobe.hub.local import LocalHub
from hubprobe.profiles import Profile, load_profile
from hubprobe.sandbox import SandboxError, choose_backend


@pytest.fixture(scope="session")
def hub_ready() -> None:
    """Skip, with why, where a local hub cannot run."""
    pytest.importorskip("jupyterhub")
    if shutil.which("configurable-http-proxy") is None:
        pytest.skip("configurable-http-proxy is not installed (npm install -g ...)")
    try:
        if choose_backend().name != "oci":
            pytest.skip("the local hub's servers need the oci backend")
    except SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


@pytest.fixture(scope="session")
def hub_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    return load_profile(str(write_profile(tmp_path_factory.mktemp("profiles"))))


@pytest.fixture(scope="session")
def local_hub(hub_profile: Profile) -> Iterator[LocalHub]:
    with running_hub(hub_profile, ("student", "other")) as hub:
        yield hub
