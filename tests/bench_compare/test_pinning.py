"""Which CPU runs what: the plan, and moving a running process's threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.compare.pinning import Pinning, move, plan


def test_envoy_stays_with_the_servers_unless_split() -> None:
    layout = Pinning(0, frozenset({1}))
    assert layout.envoy_cpus is None
    assert layout.describe() == {"load_cpu": 0, "server_cpus": [1], "envoy_cpus": [1]}
    split = Pinning(0, frozenset({1}), split_envoy=True)
    assert split.envoy_cpus == frozenset({0})
    assert split.describe()["envoy_cpus"] == [0]
    # Nothing pinned: nothing to split either.
    assert Pinning(None, None, split_envoy=True).envoy_cpus is None


def test_the_plan_follows_the_usable_cpus() -> None:
    usable = sorted(os.sched_getaffinity(0))
    layout = plan(split_envoy=True)
    if len(usable) < 2:
        assert layout == Pinning(None, None)
    else:
        assert layout.load_cpu == usable[0]
        assert layout.envoy_cpus == frozenset({usable[0]})
        assert layout.server_cpus == frozenset(usable[1:])
    assert plan(enabled=False, split_envoy=True).envoy_cpus is None


def _allowed(pid: int, tid: int) -> str:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def test_move_pins_every_thread_of_a_running_process() -> None:
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.fail("this test needs two usable CPUs to see a thread move")
    # A child with a second thread, both started before the move.
    code = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); "
    code += "print('ready', flush=True); time.sleep(30)"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            threads = [int(task.name) for task in Path(f"/proc/{child.pid}/task").iterdir()]
            assert len(threads) >= 2
            move(child.pid, frozenset({usable[-1]}))
            assert {_allowed(child.pid, tid) for tid in threads} == {str(usable[-1])}
        finally:
            child.kill()
