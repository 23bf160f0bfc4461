"""A user's server on a hub, for the length of one command, left as it was found.

If the user's server is running it is used as it is; if not, it is started
(through the hub's API, waiting on its progress stream) and stopped again
at the end, also on Ctrl-C, so a command leaves nothing running on the hub
that it did not find there.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

from hubprobe import interrupts
from hubprobe.hub.api import HubClient, HubError, check_url, read_token
from hubprobe.jupyter.api import ServerAPI

__all__ = ["HubServer", "hub_server"]


@dataclasses.dataclass(frozen=True)
class HubServer:
    client: HubClient
    user: str
    api: ServerAPI
    #: Whether this command started the server (and will stop it).
    started: bool

    @property
    def url(self) -> str:
        return self.client.url


@contextlib.contextmanager
def hub_server(
    url: str,
    token_file: str | None,
    user: str | None,
    *,
    say: Callable[[str], None] = lambda _msg: None,
    start_timeout: float = 300.0,
) -> Iterator[HubServer]:
    client = HubClient(check_url(url), read_token(token_file))
    client.info()
    name = user or client.default_user()
    client.user(name)  # an unknown user or a refused token: one line, before anything starts
    say(f"{client.url}: {name}'s server (started if needed, and then stopped again)")
    api, started = client.ensure_server(name, timeout=start_timeout)
    try:
        yield HubServer(client=client, user=name, api=api, started=started)
    finally:
        if started:
            with interrupts.shielded(), contextlib.suppress(HubError):
                client.stop_server(name)
