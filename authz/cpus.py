"""The CPUs this process may use: its scheduler affinity, capped by its cgroup's CPU quota.

`authz serve --workers auto` starts one worker per usable CPU. In a container,
``os.cpu_count()`` and usually the affinity too are the node's cores; what the
container may actually use is its cgroup's CPU quota (a Kubernetes CPU limit):
cgroup v2's ``cpu.max`` ("150000 100000": 1.5 CPUs; "max 100000": no quota), or,
only where no v2 file exists, cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
(-1: no quota). A fractional quota rounds up (1.5 → 2 workers): the last worker
then shares the remainder instead of leaving it idle.

The quota of every cgroup from this process's own (``/proc/self/cgroup``) up to the
root counts, the smallest wins: with a cgroup namespace (containers on v2) the
root is the container's cgroup, without one the container's cgroup is found by
its path. A file that cannot be read or parsed is ignored (logged at debug): a
quota that cannot be read never stops the server, it only goes uncapped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["CGROUP_ROOT", "SELF_CGROUP", "UsableCpus", "usable_cpus"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")
_log = logging.getLogger("authz.cpus")


@dataclass(frozen=True, slots=True)
class UsableCpus:
    """How many CPUs this process may use (``count``, at least 1), and why."""

    count: int
    affinity: int  # CPUs the scheduler lets this process run on
    quota: float | None = None  # the CPU quota in CPUs; None: no quota found
    source: Path | None = None  # the file that set the quota

    def __str__(self) -> str:
        cpus = f"{self.affinity} usable CPU{'s' if self.affinity != 1 else ''}"
        if self.quota is None:
            return f"{cpus}, no CPU quota"
        return f"CPU quota {self.quota:g} ({self.source}) of {cpus}"


def usable_cpus(
    cgroup_root: Path = CGROUP_ROOT,
    self_cgroup: Path = SELF_CGROUP,
    affinity: int | None = None,
) -> UsableCpus:
    """The CPUs this process may use: ``affinity`` (default: this process's) capped by
    the CPU quota found under ``cgroup_root`` for the cgroups ``self_cgroup`` names."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0))
    v2_path, v1_path = _own_cgroups(self_cgroup)
    found = _v2_quota(cgroup_root, v2_path) or _v1_quota(cgroup_root, v1_path)
    if found is None:
        return UsableCpus(max(1, affinity), affinity)
    (quota_us, period_us), source = found
    ceiling = -(-quota_us // period_us)
    return UsableCpus(max(1, min(affinity, ceiling)), affinity, quota_us / period_us, source)


_Quota = tuple[tuple[int, int], Path]  # (quota µs, period µs), and the file that said so


def _own_cgroups(self_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup paths: the v2 one, and the v1 one of the cpu controller."""
    v2 = v1 = "/"
    try:
        text = self_cgroup.read_text()
    except OSError as exc:
        _log.debug("cpus: cannot read %s: %s", self_cgroup, exc)
        return v2, v1
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _up_from(mount: Path, path: str) -> Iterator[Path]:
    """``mount/path`` and each of its parents up to ``mount`` itself (only ``mount`` for a
    path outside this cgroup namespace, which the kernel shows with ``..``)."""
    relative = PurePosixPath(path.strip("/"))
    if ".." in relative.parts:
        relative = PurePosixPath()
    for parent in (relative, *relative.parents):
        yield mount / parent


def _v2_quota(root: Path, path: str) -> _Quota | None:
    """The smallest cpu.max quota from ``root/path`` up to ``root``; None if there is none."""
    quotas = []
    for directory in _up_from(root, path):
        text = _read(directory / "cpu.max")
        if text is None:
            continue
        limit, _, period = text.partition(" ")
        if limit == "max" and _count(period) is not None:
            continue
        quota = _quota(directory / "cpu.max", limit, period)
        if quota is not None:
            quotas.append(quota)
    return _smallest(quotas)


def _v1_quota(root: Path, path: str) -> _Quota | None:
    """The smallest cfs quota of the cpu controller, wherever it is mounted."""
    quotas = []
    for mount in _V1_CPU_MOUNTS:
        for directory in _up_from(root / mount, path):
            limit = _read(directory / "cpu.cfs_quota_us")
            period = _read(directory / "cpu.cfs_period_us")
            if limit is None or period is None or limit == "-1":
                continue
            quota = _quota(directory / "cpu.cfs_quota_us", limit, period)
            if quota is not None:
                quotas.append(quota)
    return _smallest(quotas)


def _quota(source: Path, limit: str, period: str) -> _Quota | None:
    quota_us, period_us = _count(limit), _count(period)
    if quota_us is None or period_us is None:
        _log.debug("cpus: %s: not a CPU quota (%r %r); ignored", source, limit, period)
        return None
    return (quota_us, period_us), source


def _smallest(quotas: list[_Quota]) -> _Quota | None:
    return min(quotas, key=lambda found: found[0][0] / found[0][1], default=None)


def _read(path: Path) -> str | None:
    """The file's one line, or None when it is missing or unreadable."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            _log.debug("cpus: cannot read %s: %s; ignored", path, exc)
        return None


def _count(text: str) -> int | None:
    """A positive whole number of microseconds, or None."""
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None
