"""Every packet of the kind tier stays on the machine.

The clusters' nodes sit on the tier's own Docker network, whose bridge the
tier names (``gwp-kind0``) and makes without masquerading. Three things
keep their traffic on the machine, and one proves it did:

- on the host, blackhole routes for the clusters' Service and pod ranges:
  a pod's request to a Service address that kube-proxy has not programmed
  yet, or to a pod address no node holds, is dropped here rather than sent
  out through the default route;
- in each node, a blackhole route for the pod range (the nodes' own pod
  subnets are more specific), and a routing rule that drops forwarded
  traffic still addressed to the Service range (locally made traffic, such
  as the API server calling a webhook, is exempt: kube-proxy rewrites it
  after routing);
- on the host, a rule at the top of Docker's ``DOCKER-USER`` chain that
  drops and counts every packet from the tier's bridge to any other
  interface;
- ``check()`` reads that counter at the end of a run: a packet counted
  there is one that tried to leave, and the run fails, naming how many.

Only root may change routes and iptables; without it the guard says so and
the report carries the note (a user's workstation has a network anyway).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field

BRIDGE = "gwp-kind0"
POD_RANGE = "10.244.0.0/16"
SERVICE_RANGE = "10.96.0.0/16"
COMMENT = "gitops-whitepaper kind tier: nothing leaves the machine"
# An address off the machine (TEST-NET-3, never routed on the internet) the
# probe tries to reach from a pod, to show that the guard drops and counts it.
PROBE = "203.0.113.7"
PROBE_COMMENT = "gitops-whitepaper kind tier: the egress probe"
RULE_PRIORITIES = (9100, 9101)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def iptables_rule(bridge: str = BRIDGE) -> list[str]:
    return ["-i", bridge, "!", "-o", bridge, "-m", "comment", "--comment", COMMENT, "-j", "DROP"]


def overlapping(route_table: str, ranges=(POD_RANGE, SERVICE_RANGE)) -> list[str]:
    """Ranges that a route of the host already covers or overlaps (then the
    host uses them, and the guard must not blackhole them)."""
    taken = []
    for line in route_table.splitlines():
        words = line.split()
        if not words or words[0] in ("default", "blackhole", "unreachable"):
            continue
        try:
            net = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            continue
        taken += [r for r in ranges if net.overlaps(ipaddress.ip_network(r)) and r not in taken]
    return taken


@dataclass
class HostGuard:
    """What the guard added on the host, so that it removes exactly that."""

    routes: list[str] = field(default_factory=list)
    rule: bool = False  # the rule is in place (this guard's or a run beside it's)
    added_rule: bool = False  # this guard added it, so this guard removes it
    probe_packets: int = 0  # the probe's, counted by the drop rule too
    notes: list[str] = field(default_factory=list)

    def install(self) -> None:
        if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"):
            self.notes.append("not root (or no ip/iptables): the host's egress guard is not installed, so this run "
                              "does not prove that no packet left the machine")
            return
        table = _run(["ip", "-4", "route", "show"]).stdout
        clash = overlapping(table)
        if clash:
            raise RuntimeError(f"the host already routes {', '.join(clash)}, the kind tier's cluster ranges: "
                               "free them or change the tier's ranges (tests/cluster/egress.py)")
        for cidr in (POD_RANGE, SERVICE_RANGE):
            if f"blackhole {cidr}" not in table:
                if _run(["ip", "route", "add", "blackhole", cidr]).returncode == 0:
                    self.routes.append(cidr)
        if _run(["iptables", "-C", "DOCKER-USER", *iptables_rule()]).returncode != 0:
            proc = _run(["iptables", "-I", "DOCKER-USER", "1", *iptables_rule()])
            if proc.returncode != 0:
                raise RuntimeError(f"cannot add the egress rule to DOCKER-USER: {proc.stderr.strip()}")
            self.added_rule = True
        self.rule = True

    def dropped(self) -> int:
        """Packets the rule dropped that were not the probe's: ones that
        tried to leave the machine."""
        listing = _run(["iptables", "-L", "DOCKER-USER", "-v", "-x", "-n"]).stdout
        return counted(listing, COMMENT) - counted(listing, PROBE_COMMENT) - self.probe_packets

    def probe_rule(self, add: bool) -> None:
        """A counting rule (no verdict) for the probe's address, ahead of the
        drop: the probe's packets are counted there, then dropped."""
        rule = ["-i", BRIDGE, "-d", PROBE, "-m", "comment", "--comment", PROBE_COMMENT]
        if add:
            _run(["iptables", "-I", "DOCKER-USER", "1", *rule])
        else:
            self.probe_packets += self.probed()[0]  # still dropped by the rule below: not a leak
            while _run(["iptables", "-D", "DOCKER-USER", *rule]).returncode == 0:
                pass

    def probed(self) -> tuple[int, int]:
        """(packets to the probe's address, packets dropped in all)."""
        listing = _run(["iptables", "-L", "DOCKER-USER", "-v", "-x", "-n"]).stdout
        return counted(listing, PROBE_COMMENT), counted(listing, COMMENT)

    def check(self) -> str:
        """'' when no packet tried to leave; else the failure message."""
        if not self.rule:
            return ""
        count = self.dropped()
        if count:
            return (f"{count} packet(s) from the kind tier's network were headed off the machine (dropped by the "
                    f"DOCKER-USER rule on {BRIDGE}); find the pod or address with the conntrack table and fix it")
        return ""

    def remove(self) -> None:
        for cidr in self.routes:
            _run(["ip", "route", "del", "blackhole", cidr])
        self.routes = []
        if self.added_rule:
            while _run(["iptables", "-D", "DOCKER-USER", *iptables_rule()]).returncode == 0:
                pass
            self.added_rule = False
        self.rule = False


def counted(listing: str, comment: str) -> int:
    """The packet count of the rules ``iptables -L -v -x -n`` lists with ``comment``."""
    return sum(int(line.split()[0]) for line in listing.splitlines() if f"/* {comment} */" in line)


def node_commands() -> list[list[str]]:
    """What each node runs (``docker exec``) to drop unroutable cluster traffic."""
    low, high = RULE_PRIORITIES
    return [
        ["ip", "route", "replace", "blackhole", POD_RANGE],
        ["ip", "rule", "add", "priority", str(low), "iif", "lo", "lookup", "main"],
        ["ip", "rule", "add", "priority", str(high), "to", SERVICE_RANGE, "blackhole"],
    ]


def leftovers() -> list[str]:
    """The guard's routes and rules still on the host (``nox -s cluster-clean``)."""
    out = []
    if os.geteuid() != 0 or not shutil.which("ip"):
        return out
    table = _run(["ip", "-4", "route", "show"]).stdout
    out += [f"blackhole {cidr}" for cidr in (POD_RANGE, SERVICE_RANGE) if f"blackhole {cidr}" in table]
    if shutil.which("iptables") and COMMENT in _run(["iptables", "-S", "DOCKER-USER"]).stdout:
        out.append("DOCKER-USER rule")
    return out


def remove_leftovers() -> None:
    guard = HostGuard(routes=[c for c in (POD_RANGE, SERVICE_RANGE)], rule=True, added_rule=True)
    guard.remove()
