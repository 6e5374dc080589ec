"""Which CPU the load generator gets and which the servers get.

On a machine with two or more usable CPUs the load generator is pinned to one
(``taskset -c``) and every server to the others, so the two never take turns on the
same core: a queue that builds up is then the server's, not the client's. The
servers are pinned by pinning this process before it starts them; children inherit
the affinity of the thread that forks them.

With ``split_envoy``, Envoy is moved to the load generator's CPU once it runs, so an
ext_authz server has the other CPU to itself, as in a mesh where the sidecar and
the authorization service run in different pods.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pinning", "move", "plan"]


@dataclass(frozen=True, slots=True)
class Pinning:
    """The load generator's CPU and the servers' CPUs; ``None`` when not pinned."""

    load_cpu: int | None
    server_cpus: frozenset[int] | None
    split_envoy: bool = False

    def pin_servers(self) -> None:
        """Pin the calling thread (and so every server it starts) to the server CPUs."""
        if self.server_cpus is not None:
            os.sched_setaffinity(0, self.server_cpus)

    def load_prefix(self) -> list[str]:
        """The command prefix that runs the load generator on its own CPU."""
        if self.load_cpu is None:
            return []
        return ["taskset", "-c", str(self.load_cpu)]

    @property
    def envoy_cpus(self) -> frozenset[int] | None:
        """Where Envoy is moved once started; None: it stays with the servers."""
        if not self.split_envoy or self.load_cpu is None:
            return None
        return frozenset({self.load_cpu})

    def describe(self) -> dict[str, object]:
        """The pinning for the results file."""
        servers = None if self.server_cpus is None else sorted(self.server_cpus)
        envoy = servers if self.envoy_cpus is None else sorted(self.envoy_cpus)
        return {"load_cpu": self.load_cpu, "server_cpus": servers, "envoy_cpus": envoy}


def plan(enabled: bool = True, *, split_envoy: bool = False) -> Pinning:
    """Load generator on the lowest usable CPU, servers on the rest (if there are two);
    with ``split_envoy``, Envoy joins the load generator."""
    usable = sorted(os.sched_getaffinity(0))
    if not enabled or len(usable) < 2 or shutil.which("taskset") is None:
        return Pinning(None, None)
    return Pinning(usable[0], frozenset(usable[1:]), split_envoy)


def move(pid: int, cpus: frozenset[int]) -> None:
    """Pin every thread of the running process ``pid`` to ``cpus``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)
