"""authz.cpus: the CPUs `--workers auto` counts, from fake cgroup trees in a temporary
directory (the cgroup root and /proc/self/cgroup are the function's I/O seams)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authz.cpus import UsableCpus, usable_cpus

V2_ONLY = "0::/\n"
V2_NESTED = "0::/kubepods/pod1/ctr\n"
V1 = "12:cpu,cpuacct:/\n11:memory:/\n0::/\n"


def _tree(root: Path, files: dict[str, str | None]) -> None:
    """``files``: path under ``root`` → content (None: a directory where a file is expected)."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        else:
            path.write_text(content)


CASES = [
    # (files under the cgroup root, /proc/self/cgroup, affinity) → (count, quota)
    pytest.param({}, V2_ONLY, 4, 4, None, id="no-cgroup-files"),
    pytest.param({"cpu.max": "max 100000\n"}, V2_ONLY, 4, 4, None, id="v2-max"),
    pytest.param({"cpu.max": "150000 100000\n"}, V2_ONLY, 4, 2, 1.5, id="v2-1.5-rounds-up"),
    pytest.param({"cpu.max": "100000 100000\n"}, V2_ONLY, 4, 1, 1.0, id="v2-one-cpu"),
    pytest.param({"cpu.max": "250000 100000\n"}, V2_ONLY, 8, 3, 2.5, id="v2-2.5"),
    pytest.param({"cpu.max": "50000 100000\n"}, V2_ONLY, 4, 1, 0.5, id="v2-half-is-one"),
    pytest.param({"cpu.max": "800000 100000\n"}, V2_ONLY, 2, 2, 8.0, id="v2-affinity-caps"),
    pytest.param({"cpu.max": "200000 50000\n"}, V2_ONLY, 8, 4, 4.0, id="v2-other-period"),
    pytest.param({"cpu.max": "100000 100000"}, V2_ONLY, 1, 1, 1.0, id="affinity-one"),
    pytest.param(
        {
            "cpu.max": "max 100000",
            "kubepods/cpu.max": "300000 100000",
            "kubepods/pod1/cpu.max": "100000 100000",
            "kubepods/pod1/ctr/cpu.max": "max 100000",
        },
        V2_NESTED,
        8,
        1,
        1.0,
        id="v2-smallest-on-the-way-up",
    ),
    pytest.param(
        {"kubepods/pod1/ctr/cpu.max": "200000 100000"}, V2_NESTED, 8, 2, 2.0, id="v2-own-cgroup"
    ),
    pytest.param(
        {"cpu.max": "100000 100000"}, "0::/../../elsewhere\n", 8, 1, 1.0, id="v2-outside-ns"
    ),
    pytest.param(
        {"cpu,cpuacct/cpu.cfs_quota_us": "150000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
        V1,
        4,
        2,
        1.5,
        id="v1-cpu,cpuacct",
    ),
    pytest.param(
        {"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"},
        V1,
        8,
        3,
        3.0,
        id="v1-cpu",
    ),
    pytest.param(
        {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"},
        V1,
        4,
        4,
        None,
        id="v1-unlimited",
    ),
    pytest.param(
        {
            "cpu.max": "100000 100000",
            "cpu/cpu.cfs_quota_us": "400000",
            "cpu/cpu.cfs_period_us": "100000",
        },
        V1,
        8,
        1,
        1.0,
        id="v2-before-v1",
    ),
    pytest.param({"cpu.max": "lots 100000"}, V2_ONLY, 4, 4, None, id="garbage-quota"),
    pytest.param({"cpu.max": "100000 0"}, V2_ONLY, 4, 4, None, id="garbage-zero-period"),
    pytest.param({"cpu.max": "max"}, V2_ONLY, 4, 4, None, id="garbage-no-period"),
    pytest.param({"cpu.max": ""}, V2_ONLY, 4, 4, None, id="garbage-empty"),
    pytest.param({"cpu.max": "-5 100000"}, V2_ONLY, 4, 4, None, id="garbage-negative"),
    pytest.param({"cpu.max": "\uff11 100000"}, V2_ONLY, 4, 4, None, id="garbage-unicode-digit"),
    pytest.param({"cpu.max": None}, V2_ONLY, 4, 4, None, id="unreadable-is-a-directory"),
    pytest.param(
        {"cpu/cpu.cfs_quota_us": "abc", "cpu/cpu.cfs_period_us": "100000"},
        V1,
        4,
        4,
        None,
        id="v1-garbage",
    ),
    pytest.param({"cpu/cpu.cfs_quota_us": "100000"}, V1, 4, 4, None, id="v1-missing-period"),
    pytest.param(
        {"cpu.max": "garbage", "kubepods/pod1/ctr/cpu.max": "100000 100000"},
        V2_NESTED,
        4,
        1,
        1.0,
        id="garbage-beside-a-good-quota",
    ),
    pytest.param({"cpu.max": "150000 100000"}, "not a cgroup file", 4, 2, 1.5, id="garbage-self"),
]


@pytest.mark.parametrize(("files", "own", "affinity", "count", "quota"), CASES)
def test_usable_cpus(
    tmp_path: Path,
    files: dict[str, str | None],
    own: str,
    affinity: int,
    count: int,
    quota: float | None,
) -> None:
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self-cgroup"
    root.mkdir()
    _tree(root, files)
    self_cgroup.write_text(own)
    usable = usable_cpus(root, self_cgroup, affinity)
    assert (usable.count, usable.affinity, usable.quota) == (count, affinity, quota)


def test_a_missing_self_cgroup_reads_the_root_only(tmp_path: Path) -> None:
    _tree(tmp_path, {"cpu.max": "100000 100000", "a/cpu.max": "50000 100000"})
    assert usable_cpus(tmp_path, tmp_path / "missing", 4).count == 1


def test_without_an_affinity_the_process_own_counts(tmp_path: Path) -> None:
    usable = usable_cpus(tmp_path, tmp_path / "missing")
    assert usable == UsableCpus(len(os.sched_getaffinity(0)), len(os.sched_getaffinity(0)))


def test_the_quota_names_its_file(tmp_path: Path) -> None:
    _tree(tmp_path, {"cpu.max": "150000 100000"})
    usable = usable_cpus(tmp_path, tmp_path / "missing", 4)
    assert usable.source == tmp_path / "cpu.max"
    assert str(usable) == f"CPU quota 1.5 ({tmp_path / 'cpu.max'}) of 4 usable CPUs"


@pytest.mark.parametrize(
    ("usable", "text"),
    [
        (UsableCpus(2, 2), "2 usable CPUs, no CPU quota"),
        (UsableCpus(1, 1), "1 usable CPU, no CPU quota"),
        (UsableCpus(1, 8, 1.0, Path("/q")), "CPU quota 1 (/q) of 8 usable CPUs"),
    ],
    ids=["two", "one", "quota"],
)
def test_how_the_count_is_explained(usable: UsableCpus, text: str) -> None:
    assert str(usable) == text
