"""Hub mode against sandbox mode: the probe suite's wall time through a local JupyterHub.

Starts ``hubprobe hub``'s JupyterHub (servers in the oci container, the
default profile), runs every probe that can run on a hub through the
student's server, then the same probes in the sandbox, and prints both wall
times and the server's one-time start. Run by ``nox -s bench``; needs root,
the oci backend and configurable-http-proxy. Writes nothing into probes/.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat

from hubprobe.claims.freshness import current_environment
from hubprobe.claims.registry import load_claims
from hubprobe.claims.suite import run_suite
from hubprobe.hub.api import HubClient
from hubprobe.hub.local import LocalHub
from hubprobe.hub.measured import load_measured, measure, profile_toml
from hubprobe.hub.probes import run_hub_suite, skip_reason
from hubprobe.hub.session import HubServer
from hubprobe.profiles import DEFAULT_PROFILE, load_profile
from hubprobe.sandbox import choose_backend

PROBES = Path(__file__).resolve().parent.parent / "probes"


def main() -> int:
    profile = load_profile(DEFAULT_PROFILE)
    claims = load_claims(PROBES / "claims.toml")
    with LocalHub(profile) as hub:
        client = HubClient(hub.url, hub.token)
        start = time.perf_counter()
        api, _ = client.ensure_server("student")
        server_start = time.perf_counter() - start
        server = HubServer(client=client, user="student", api=api, started=True)
        measured = measure(api, hub.url, "student", "bench")
        with tempfile.TemporaryDirectory() as folder:
            hub_profile = load_measured(
                profile_toml(measured, "bench", profile), Path(folder), "bench"
            )
        runnable = [
            c.id for c in claims
            if skip_reason(nbformat.read(PROBES / f"{c.probe}.ipynb", as_version=4)
                           .metadata.get("hubprobe", {}), hub_profile) is None
        ]  # fmt: skip
        start = time.perf_counter()
        _, hub_runs, _ = run_hub_suite(
            claims, PROBES, server, hub_profile, results_path=None, only=runnable,
            say=lambda _m: None,
        )  # fmt: skip
        hub_total = time.perf_counter() - start
        client.stop_server("student")
    backend = choose_backend()
    env = current_environment(backend.name)
    start = time.perf_counter()
    _, runs = run_suite(
        claims, PROBES, [profile], backend, env, only=runnable, save=False, force=True,
        say=lambda _m: None,
    )  # fmt: skip
    sandbox_total = time.perf_counter() - start
    print(f"probe suite, {len(hub_runs)} probes that can run on a hub, profile {profile.name}")
    print(f"  hub mode (local JupyterHub, one server): {hub_total:6.1f} s"
          f"  (+ {server_start:.1f} s to start the server once)")  # fmt: skip
    print(f"  sandbox mode ({backend.name}, a server per probe): {sandbox_total:6.1f} s")
    by_name = {r.path.stem: r for r in runs}
    for run in hub_runs:
        local = by_name.get(run.path.stem)
        print(f"    {run.path.stem:<22} hub {run.wall_seconds:6.1f} s"
              f"  sandbox {local.wall_seconds if local else float('nan'):6.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
