"""The Deployment: least privilege, availability, probes, shutdown, and arguments that run.

The last test starts the real server with the container's own arguments, on the
bundle laid out as the kubelet mounts the ConfigMap and the admin token as it
mounts the Secret, so a flag the server does not know, a path that does not fit
the mounts or a token file mode it refuses fails here rather than in a cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from authz.cpus import usable_cpus
from dev.authz_server import health_status
from dev.deploy_bundle import flatten
from dev.ports import LOOPBACK, free_port
from tests.deploy.manifests import REPO, Manifest, one
from tests.lifecycle.process import SERVING_ON, LogLines

ADMIN_TOKEN = "deployment-test-admin-token-0123456789"


def _pod(objects: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment", "authz")["spec"]["template"]["spec"]
    return spec


def _container(objects: list[Manifest]) -> dict[str, Any]:
    (container,) = _pod(objects)["containers"]
    return dict(container)


def _flags(container: dict[str, Any]) -> dict[str, str]:
    """``--name=value`` arguments after the ``serve`` command, by name."""
    command, *args = container["args"]
    assert command == "serve"
    flags = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        assert name.startswith("--") and sep, f"expected --flag=value, got {arg!r}"
        flags[name] = value
    return flags


def _port(container: dict[str, Any], name: str) -> int:
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return int(number)


def test_runs_as_an_unprivileged_user(base: list[Manifest]) -> None:
    pod, container = _pod(base), _container(base)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsUser"] == pod["securityContext"]["runAsUser"]


def test_only_emptydirs_are_writable(base: list[Manifest]) -> None:
    pod, container = _pod(base), _container(base)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable, "the state directory needs one writable mount"
    for mount in writable:
        assert "emptyDir" in volumes[mount["name"]], mount["name"]


def test_the_admin_token_is_readable_by_the_server_only(base: list[Manifest]) -> None:
    pod = _pod(base)
    (secret,) = [v["secret"] for v in pod["volumes"] if "secret" in v]
    assert secret["defaultMode"] & 0o007 == 0  # authz refuses a token others can read
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def test_listens_on_all_interfaces_with_an_authenticated_admin_api(base: list[Manifest]) -> None:
    container = _container(base)
    flags = _flags(container)
    assert flags["--listen"] == f"0.0.0.0:{_port(container, 'grpc')}"
    assert flags["--admin-listen"] == f"0.0.0.0:{_port(container, 'admin')}"
    assert flags["--metrics-listen"] == f"0.0.0.0:{_port(container, 'metrics')}"
    scrape = one(base, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert scrape["prometheus.io/port"] == str(_port(container, "metrics"))
    assert scrape["prometheus.io/path"] == "/metrics"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert os.path.dirname(flags["--admin-token-file"]) in mounts
    assert flags["--policies"] in mounts


def test_probes_ask_grpc_health_on_the_check_port(base: list[Manifest]) -> None:
    container = _container(base)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc = container[probe]["grpc"]
        assert grpc["port"] == _port(container, "grpc"), probe
        assert grpc.get("service", "") == "", probe  # "": SERVING once the bundle loaded
    # Liveness must not restart a replica that is only slow under load.
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > (
        readiness["periodSeconds"] * readiness["failureThreshold"]
    )


def test_shutdown_drains_after_the_endpoints_are_gone(base: list[Manifest]) -> None:
    pod, container = _pod(base), _container(base)
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(_flags(container)["--grace"])
    assert sleep > 0
    assert sleep + grace < pod["terminationGracePeriodSeconds"]


def test_replicas_survive_a_node_and_a_rollout(base: list[Manifest]) -> None:
    deployment = one(base, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = one(base, "HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] == deployment["spec"]["replicas"]
    assert hpa["maxReplicas"] > hpa["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert one(base, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    hard = [
        c
        for c in _pod(base)["topologySpreadConstraints"]
        if c["whenUnsatisfiable"] == "DoNotSchedule"
    ]
    assert [c["topologyKey"] for c in hard] == ["kubernetes.io/hostname"]


def test_requests_and_limits_are_set(base: list[Manifest]) -> None:
    resources = _container(base)["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) == {"cpu", "memory"}, bound


def test_the_cpu_limit_makes_one_worker_per_pod(base: list[Manifest], tmp_path: Path) -> None:
    """No --workers: auto counts the container's CPU quota, which the kubelet sets from
    limits.cpu (cgroup v2 cpu.max, period 100 ms), whatever the node's core count."""
    container = _container(base)
    assert "--workers" not in _flags(container)
    limit = container["resources"]["limits"]["cpu"]
    millicores = int(limit[:-1]) if limit.endswith("m") else int(float(limit) * 1000)
    (tmp_path / "cpu.max").write_text(f"{millicores * 100} 100000\n")
    (tmp_path / "self").write_text("0::/\n")
    assert usable_cpus(tmp_path, tmp_path / "self", affinity=16).count == 1


def test_no_sidecar_is_injected(base: list[Manifest]) -> None:
    template = one(base, "Deployment")["spec"]["template"]["metadata"]
    assert template["labels"]["sidecar.istio.io/inject"] == "false"
    assert template["annotations"]["sidecar.istio.io/inject"] == "false"
    namespace = one(base, "Namespace")["metadata"]["labels"]
    assert namespace["istio-injection"] == "disabled"
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


def _mount_configmap(root: Path, files: dict[str, bytes]) -> None:
    """``root`` laid out as the kubelet mounts a ConfigMap: ``name -> ..data/name``."""
    generation = root / "..2026_01_01_00_00_00.000000000"
    generation.mkdir(parents=True)
    for name, content in files.items():
        (generation / name).write_bytes(content)
        (root / name).symlink_to(f"..data/{name}")
    (root / "..data").symlink_to(generation.name)


def _admin_status(port: int) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/v1/status",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_the_container_arguments_run_the_server(base: list[Manifest], tmp_path: Path) -> None:
    """The server starts with the Deployment's arguments, on the mounts' layout, and drains."""
    container = _container(base)
    flags = _flags(container)
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in container["volumeMounts"]}
    _mount_configmap(mounts[flags["--policies"]], flatten(REPO / "policies").files)
    token = tmp_path / "admin-token" / os.path.basename(flags["--admin-token-file"])
    token.parent.mkdir()
    token.write_text(ADMIN_TOKEN + "\n")
    (secret,) = [v["secret"] for v in _pod(base)["volumes"] if "secret" in v]
    token.chmod(secret["defaultMode"])
    mounts[flags["--state-dir"]].mkdir()

    check_port, admin_port, metrics_port = free_port(), free_port(), free_port()
    args = []
    for name, value in flags.items():
        for path, local in mounts.items():
            value = re.sub(f"^{re.escape(path)}", str(local), value)
        if name == "--listen":
            value = f"{LOOPBACK}:{check_port}"  # tests bind loopback only
        elif name == "--admin-listen":
            value = f"{LOOPBACK}:{admin_port}"
        elif name == "--metrics-listen":
            value = f"{LOOPBACK}:{metrics_port}"
        args.append(f"{name}={value}")
    process = subprocess.Popen(
        [sys.executable, "-m", "authz", "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        log = LogLines(process.stderr)
        log.wait_for(SERVING_ON)
        assert health_status(f"{LOOPBACK}:{check_port}") == "SERVING"
        status = _admin_status(admin_port)
        assert status["active_version"] == status["bundle_version"]
        assert len(status["issuers"]) == 1
        metrics = f"http://{LOOPBACK}:{metrics_port}/metrics"
        with urllib.request.urlopen(metrics, timeout=5) as response:
            exposition = response.read().decode()
        assert f'authz_policy_version_info{{version="{status["active_version"]}"}} 1' in exposition
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        log.wait_for(re.compile(r"authz\.server: stopped"))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)
        if process.stderr is not None:
            process.stderr.close()
    assert (mounts[flags["--state-dir"]] / "state.json").is_file()
