"""The kwok provider without a cluster: the kwokctl configuration it writes,
the ports it gives each cluster, and how a Flux controller's in-cluster
arguments become a host process's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster import flux_host, names, processes
from cluster.providers import Endpoints, cluster_vars_manifest, mirror_variable
from cluster.providers.kwok import KwokProvider, kube_context


def provider(tmp_path: Path) -> KwokProvider:
    tools = {n: f"/opt/bin/{n}" for n in ("kwokctl", "kwok", "kube-apiserver", "kube-controller-manager",
                                           "kube-scheduler", "kubectl", "etcd")}
    return KwokProvider(tools, str(tmp_path / "work"), str(tmp_path))


def test_config_is_loopback_with_the_toolchains_binaries_and_webhook_admission_off(tmp_path):
    made = provider(tmp_path)
    doc = json.loads(made.config("staging"))
    options = doc["options"]
    assert options["runtime"] == "binary" and options["bindAddress"] == "127.0.0.1"
    assert options["kubeApiserverBinary"] == "/opt/bin/kube-apiserver"
    assert options["etcdBinary"] == "/opt/bin/etcd" and options["kwokControllerBinary"] == "/opt/bin/kwok"
    assert options["kubeAdmission"] is True and options["kubeAuthorization"] is True
    args = {a["key"]: a["value"] for a in doc["componentsPatches"][0]["extraArgs"]}
    assert args["advertise-address"] == "127.0.0.1"
    assert args["disable-admission-plugins"] == "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"


def test_every_cluster_has_its_own_ports_home_and_kubeconfig(tmp_path):
    made = provider(tmp_path)
    seen: set[int] = set()
    for target in names.ALL_CLUSTERS:
        ports = set(made.control_plane_ports(target).values())
        addresses = made.controller_ports(target)
        ports |= {addresses.events, addresses.storage, *range(addresses.first_free, addresses.last + 1)}
        assert not ports & seen, target
        seen |= ports
        assert made.home(target).startswith(str(tmp_path / "work"))
        assert made.kubeconfig(target).startswith(made.home(target))
        assert made.env(target)["HOME"] == made.home(target) and made.env(target)["KUBECONFIG"] == ""
    assert kube_context("staging") == "kwok-gwp-staging"


SOURCE_ARGS = [
    "--events-addr=http://notification-controller.flux-system.svc.cluster.local./",
    "--watch-all-namespaces=true",
    "--log-level=info",
    "--log-encoding=json",
    "--enable-leader-election",
    "--storage-path=/data",
    "--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local.",
]
NOTIFICATION_ARGS = ["--watch-all-namespaces=true", "--log-level=info", "--log-encoding=json",
                     "--enable-leader-election"]


def test_controller_arguments_keep_their_meaning_and_get_host_addresses(tmp_path):
    ports = flux_host.Addresses(events=100, storage=101, first_free=102, last=120)
    got = flux_host.host_args("source-controller", SOURCE_ARGS, ports, tmp_path / "storage")
    assert "--events-addr=http://127.0.0.1:100/" in got
    assert f"--storage-path={tmp_path / 'storage'}" in got
    assert "--storage-adv-addr=127.0.0.1:101" in got and "--storage-addr=127.0.0.1:101" in got
    assert "--watch-all-namespaces=true" in got
    assert "--enable-leader-election" not in got, "outside a pod the lease namespace is unknown"
    assert {"--metrics-addr=127.0.0.1:102", "--health-addr=127.0.0.1:103"} <= set(got)
    assert not [a for a in got if "svc.cluster.local" in a or "$(" in a]


def test_notification_controller_listens_where_the_others_post(tmp_path):
    ports = flux_host.Addresses(events=100, storage=101, first_free=102, last=120)
    got = flux_host.host_args("notification-controller", [*NOTIFICATION_ARGS, "--receiverAddr=:9292",
                                                          "--events-addr=:9090"], ports, tmp_path)
    assert "--events-addr=127.0.0.1:100" in got
    assert "--receiverAddr=127.0.0.1:102" in got


def test_notification_controller_defaults_become_loopback_addresses(tmp_path):
    ports = flux_host.Addresses(events=100, storage=101, first_free=102, last=120)
    got = flux_host.host_args("notification-controller", NOTIFICATION_ARGS, ports, tmp_path)
    assert "--events-addr=127.0.0.1:100" in got
    assert any(a.startswith("--receiverAddr=127.0.0.1:") for a in got)


def test_a_used_up_port_range_is_an_error():
    ports = flux_host.Addresses(events=1, storage=2, first_free=3, last=3)
    ports.take()
    with pytest.raises(RuntimeError, match="port range is used up"):
        ports.take()


def test_cluster_variables_name_the_chart_mirrors(tmp_path):
    assert mirror_variable("quay.io") == "oci_mirror_quay_io"
    from cluster.providers import Cluster

    cluster = Cluster("staging", "gwp-staging", "kwok-gwp-staging", str(tmp_path / "k"))
    text = cluster_vars_manifest(cluster, Endpoints("http://127.0.0.1:1/x.git", "oci://127.0.0.1:2/platform",
                                                    chart_mirrors={"quay.io": "oci://127.0.0.1:2",
                                                                   "ghcr.io": "oci://127.0.0.1:2"}))
    assert "  oci_mirror_quay_io: oci://127.0.0.1:2\n" in text and "  oci_mirror_ghcr_io: oci://127.0.0.1:2\n" in text
    assert '  platform_oci_insecure: "true"\n' in text


def test_a_port_in_use_is_refused_with_what_to_do():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(processes.PortInUse, match="cluster-clean"):
            processes.require_free({"kube-apiserver": port}, "staging (kwok)")


def test_a_crd_without_conditions_yet_is_not_established():
    from cluster.providers.kwok import _all_established

    assert not _all_established('{"items": [{"status": {"conditions": null}}]}')
    assert not _all_established('{"items": [{}]}')
    assert not _all_established("not json")
    assert _all_established('{"items": [{"status": {"conditions": [{"type": "Established", "status": "True"}]}}]}')
