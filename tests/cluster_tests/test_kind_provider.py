"""The kind provider without Docker: the config it derives from the tree's,
the commands it plans, the CNI configuration and routes it writes, the
egress guard's arithmetic, and the Docker engine's pieces (the capability
wrapper really run against a stand-in runc)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yamlload

import docker_engine
from cluster import egress, names
from cluster.providers import get
from cluster.providers.kind import KindProvider, cni_config, node_subnets, pick_ipv4, schedulable
from cluster.runner import LiveRunner, Recorder
from cluster.guard import ContextGuard
from harness.model import PROJECT_ROOT


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "create").mkdir(parents=True)
    (root / "create" / "staging.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: staging\nnetworking:\n  apiServerAddress: 127.0.0.1\n"
        "nodes:\n  - role: control-plane\n    image: kindest/node:v1.35.8@sha256:0\n  - role: worker\n"
        "    image: kindest/node:v1.35.8@sha256:0\n")
    return root


def test_the_tier_config_changes_only_what_it_must(tree: Path, tmp_path: Path) -> None:
    provider = KindProvider({}, str(tmp_path), str(tree))
    config = yamlload.load(provider.tier_config("staging", "gwp.local/kind-node:k1"))
    assert config["name"] == names.cluster_name("staging")
    assert [n["image"] for n in config["nodes"]] == ["gwp.local/kind-node:k1"] * 2
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker"], "the tree's shape is kept"
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"
    assert config["networking"]["disableDefaultCNI"] is True
    assert config["networking"]["podSubnet"] == egress.POD_RANGE
    assert config["networking"]["serviceSubnet"] == egress.SERVICE_RANGE


def test_every_tree_config_becomes_a_tier_config(tmp_path: Path) -> None:
    provider = KindProvider({}, str(tmp_path), str(PROJECT_ROOT))
    for target in names.ALL_CLUSTERS:
        config = yamlload.load(provider.tier_config(target, "gwp.local/kind-node:k1"))
        assert all(n["image"] == "gwp.local/kind-node:k1" for n in config["nodes"]), target


def test_create_in_a_plan_runs_nothing_and_names_the_tiers_network(tree: Path) -> None:
    provider = get("kind", {"kind": "/nonexistent/kind", "docker": "/opt/docker"}, "$GWP_WORK", str(tree))
    runner = Recorder()
    cluster = provider.create("staging", runner)
    created = [s for s in runner.steps if s.argv[1:3] == ["create", "cluster"]]
    assert created and created[0].argv[0] == "/nonexistent/kind"
    assert created[0].env["KIND_EXPERIMENTAL_DOCKER_NETWORK"] == "gwp-kind"
    assert "--config=$GWP_WORK/kind-staging.yaml" in created[0].argv
    network = [s for s in runner.steps if s.argv[1:3] == ["network", "create"]][0]
    assert "--opt=com.docker.network.bridge.enable_ip_masquerade=false" in network.argv
    assert runner.steps.index(network) < runner.steps.index(created[0])
    assert cluster.kubeconfig == "$GWP_WORK/gwp-staging.kubeconfig"


def test_missing_kind_config_says_which_file(tree: Path, tmp_path: Path) -> None:
    provider = KindProvider({}, str(tmp_path), str(tree))
    runner = LiveRunner(ContextGuard(), "kubectl", echo=lambda line: None)
    with pytest.raises(FileNotFoundError, match="create/sandbox.yaml"):
        provider.create("sandbox", runner)


def test_unknown_provider_is_named() -> None:
    with pytest.raises(ValueError, match="unknown cluster provider 'k3d'; known: kind"):
        get("k3d", {}, "/tmp", "/tmp")


@pytest.mark.parametrize("out, want", [("172.18.0.1 fc00:f853:ccd:e793::1 ", "172.18.0.1"),
                                       ("fc00::1 10.89.0.1", "10.89.0.1")])
def test_gateway_is_the_ipv4_one(out: str, want: str) -> None:
    assert pick_ipv4(out) == want


def test_no_ipv4_gateway_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no IPv4 gateway"):
        pick_ipv4("fc00::1")


def node(name: str, address: str | None, cidr: str | None) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": address}] if address else []}}


def test_each_node_gets_its_own_subnet_and_routes_to_the_others() -> None:
    got = node_subnets({"items": [node("a", "172.18.0.2", "10.244.0.0/24"), node("b", "172.18.0.3", "10.244.1.0/24")]})
    assert got == {"a": ("172.18.0.2", "10.244.0.0/24"), "b": ("172.18.0.3", "10.244.1.0/24")}
    with pytest.raises(RuntimeError, match="node c has no InternalIP or podCIDR"):
        node_subnets({"items": [node("c", "172.18.0.4", None)]})
    config = json.loads(cni_config("10.244.1.0/24"))
    assert config["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]


def tainted(name: str, *taints: tuple[str, str]) -> dict:
    return {"metadata": {"name": name}, "spec": {"taints": [{"key": k, "effect": e} for k, e in taints]}}


def test_images_go_to_the_nodes_pods_can_run_on() -> None:
    """The control plane of a cluster with workers keeps pods off; a node
    not ready yet carries a taint that goes once it is ready."""
    listing = {"items": [tainted("cp", ("node-role.kubernetes.io/control-plane", "NoSchedule")),
                         tainted("w1", ("node.kubernetes.io/not-ready", "NoSchedule")),
                         tainted("w2", ("example.org/slow", "PreferNoSchedule"))]}
    assert schedulable(listing) == ["w1", "w2"]
    alone = {"items": [tainted("cp", ("node-role.kubernetes.io/control-plane", "NoSchedule"))]}
    assert schedulable(alone) == ["cp"], "a cluster whose every node is tainted still gets its images"


def test_each_cluster_gets_the_images_it_can_run(tmp_path: Path, monkeypatch) -> None:
    provider = KindProvider({}, str(tmp_path), str(PROJECT_ROOT))
    groups = {"flux": ["flux:1", "shared:1"], "operator": ["op:1", "shared:1"], "charts": ["chart:1"],
              "client": ["client:1"], "engine": ["registry:1"]}
    monkeypatch.setattr(provider, "images", lambda: ("node.tar", "images.tar", {"groups": groups}))
    assert provider.node_images("staging") == ["chart:1", "flux:1", "shared:1", "client:1"]
    assert provider.node_images(names.SANDBOX) == ["chart:1", "flux:1", "shared:1"]
    assert provider.node_images(names.OPERATOR) == ["chart:1", "op:1", "shared:1"]
    assert all("registry:1" not in provider.node_images(t) for t in (*names.ALL_CLUSTERS, *names.PROOF_CLUSTERS))
    monkeypatch.setattr(provider, "images", lambda: ("node.tar", "images.tar", {}))
    with pytest.raises(RuntimeError, match="rebuild it"):
        provider.node_images("staging")


def test_the_guard_refuses_ranges_the_host_routes() -> None:
    table = "default via 192.0.2.1 dev eth0\n10.96.0.0/12 dev tun0\nblackhole 10.244.0.0/16\n"
    assert egress.overlapping(table) == [egress.SERVICE_RANGE]
    assert egress.overlapping("default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0\n") == []


def test_node_rules_drop_only_forwarded_service_traffic() -> None:
    commands = [" ".join(c) for c in egress.node_commands()]
    assert f"ip route replace blackhole {egress.POD_RANGE}" in commands
    low, high = egress.RULE_PRIORITIES
    assert commands.index(f"ip rule add priority {low} iif lo lookup main") < \
        commands.index(f"ip rule add priority {high} to {egress.SERVICE_RANGE} blackhole")


# -- the Docker engine ----------------------------------------------------------------


def test_the_bounding_set_decides_the_wrapper() -> None:
    assert docker_engine.lacks_sys_resource("CapBnd:\t000001fffeffffff\n")
    assert not docker_engine.lacks_sys_resource("CapBnd:\t000001ffffffffff\n")
    assert docker_engine.daemon_config(None).get("default-runtime") is None
    config = docker_engine.daemon_config(Path("/x/wrapper"))
    assert config["default-runtime"] == "gwp-runc" and config["runtimes"]["gwp-runc"]["path"] == "/x/wrapper"
    assert config["dns"] == ["127.0.0.1"] and config["bridge"] == "none"


def test_the_engine_takes_out_the_firewall_rules_it_added() -> None:
    """dockerd leaves its chains and jumps behind when it stops: what was not
    there before the tier's engine started goes, jumps before chains, a
    chain emptied before it is deleted; what was there before stays."""
    before = {"filter": ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"], "nat": []}
    now = {"filter": ["-N DOCKER", "-N DOCKER-USER", "-A FORWARD -j DOCKER-USER", "-A FORWARD -o br-1 -j DOCKER",
                      "-A DOCKER-USER -j RETURN"],
           "nat": ["-N DOCKER", "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"]}
    assert docker_engine.removal_commands(before, now) == [
        ["iptables", "-t", "filter", "-D", "FORWARD", "-o", "br-1", "-j", "DOCKER"],
        ["iptables", "-t", "filter", "-D", "FORWARD", "-j", "DOCKER-USER"],
        ["iptables", "-t", "filter", "-F", "DOCKER"],
        ["iptables", "-t", "filter", "-X", "DOCKER"],
        ["iptables", "-t", "nat", "-D", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL",
         "-j", "DOCKER"],
        ["iptables", "-t", "nat", "-F", "DOCKER"],
        ["iptables", "-t", "nat", "-X", "DOCKER"],
    ]
    assert docker_engine.removal_commands(now, now) == []


def test_the_wrapper_drops_sys_resource_and_runs_runc(tmp_path: Path) -> None:
    """The real wrapper script, against a stand-in runc that prints its args."""
    runc = tmp_path / "runc"
    runc.write_text("#!/bin/sh\necho runc \"$@\"\n")
    runc.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(docker_engine.WRAPPER_TEXT.format(python=sys.executable, runc=str(runc)))
    wrapper.chmod(0o755)
    caps = ["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"capabilities": {"bounding": caps, "effective": caps}}}))
    out = subprocess.run([str(wrapper), "--root", "/r", "create", "--bundle", str(bundle), "id1"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"runc --root /r create --bundle {bundle} id1"
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["capabilities"] == {"bounding": caps[::2], "effective": caps[::2]}
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"capabilities": {"bounding": caps}}))
    subprocess.run([str(wrapper), "exec", f"--process={process}", "id1"], capture_output=True, check=True)
    assert json.loads(process.read_text())["capabilities"]["bounding"] == caps[::2]


def test_leftover_mounts_are_the_engines_deepest_first(monkeypatch) -> None:
    monkeypatch.setenv(docker_engine.DATA_ROOT_ENV, "/var/lib/gwpd")
    info = ("1 0 0:1 / / rw - ext4 /dev/vda rw\n"
            "2 1 0:2 / /var/lib/gwpd rw - ext4 /dev/vda rw\n"
            "3 2 0:3 / /var/lib/gwpd/overlay2/abc/merged rw - overlay overlay rw\n"
            f"4 1 0:4 / {docker_engine.RUN_DIR}/exec/netns/x rw - nsfs nsfs rw\n"
            "5 1 0:5 / /var/lib/gwpdX rw - ext4 /dev/vda rw\n")
    assert docker_engine.leftover_mounts(info) == ["/var/lib/gwpd/overlay2/abc/merged",
                                                   f"{docker_engine.RUN_DIR}/exec/netns/x", "/var/lib/gwpd"]


def test_podinfos_answer_counts_only_when_openssl_verified_it() -> None:
    from cluster.scenarios import workloads

    verified = 'depth=0 \nverify return:1\nHTTP/1.0 200 OK\nContent-Length: 9\n\n{"message": "podinfo on staging"}\n'
    assert workloads.answer_of(verified)["message"] == "podinfo on staging"
    for broken in (verified.replace("verify return:1", "verify error:num=18:self-signed certificate"),
                   verified.replace("200 OK", "503 Service Unavailable")):
        with pytest.raises(AssertionError, match="no verified HTTP 200 answer"):
            workloads.answer_of(broken)
    script = json.loads(workloads.client_pod("img"))["spec"]["containers"][0]["command"][2]
    assert "-CAfile /tls/ca.crt" in script and "-verify_return_error" in script
    assert f"-verify_hostname {workloads.HOST}" in script
