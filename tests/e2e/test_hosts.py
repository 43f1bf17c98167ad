"""Two worker hosts on one PostgreSQL and Redis, each in a network namespace of its own (its own
address, its own CONVEYOR_HOSTNAME), the mock provider in the root namespace with calls of 2 s.

Inside each namespace the workers reach PostgreSQL, Redis and the mock at their usual 127.0.0.1
addresses: a socat there forwards each port over the namespace's veth pair to a socat in the root
namespace, which forwards to the real server. Nothing of the machine's configuration changes (no
pg_hba, listen_addresses or firewall rule), and cutting a host off is `ip link set <veth> down`.

Needs root, `ip netns` and socat; skipped with the reason where they are missing."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from apps.runs.hosts import HOSTS_KEY
from apps.runs.models import Attempt, Block
from mock_provider.testing import MockHandle, running_mock_process
from tests.e2e.conftest import ROOT, Stack, run_status, wait_for
from tests.factories import SECRET, make_key, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LATENCY_MS = 2000
PARALLELISM = 16
CEILING = 8  # calls in flight per serving process: one host alone cannot reach the run's parallelism
BLOCKS = 128
MOCK_RPM = 900
PROVIDER_TIMEOUT_SECONDS = 5
LEASE_SECONDS = PROVIDER_TIMEOUT_SECONDS + 1  # TEST_LEASE_MARGIN_SECONDS=1


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


def why_namespaces_cannot_be_made() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and veth pairs)"
    for tool in ("ip", "socat"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` on the PATH"
    probe = f"cvprobe{os.getpid()}"
    try:
        sh("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return f"cannot make a network namespace here: {getattr(error, 'stderr', b'')!r}"
    sh("ip", "netns", "del", probe)
    return None


@dataclass
class Host:
    name: str
    netns: str
    veth: str  # its root-namespace end: down cuts the host off
    root_address: str
    address: str
    bridges: list[subprocess.Popen] = field(default_factory=list)

    def cut_off(self) -> None:
        sh("ip", "link", "set", self.veth, "down")

    def reconnect(self) -> None:
        sh("ip", "link", "set", self.veth, "up")


class Hosts:
    """Namespaces, veth pairs and port bridges made for one test, all removed at the end."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.hosts: list[Host] = []
        self.tag = uuid.uuid4().hex[:4]

    def add(self, name: str) -> Host:
        index = len(self.hosts) + 1
        subnet = f"10.231.{(os.getpid() % 100) * 2 + index}"
        host = Host(name=name, netns=f"cv{self.tag}{name}", veth=f"cv{self.tag}{index}r",
                    root_address=f"{subnet}.1", address=f"{subnet}.2")
        self.hosts.append(host)
        inner = f"cv{self.tag}{index}n"
        sh("ip", "netns", "add", host.netns)
        sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", host.netns)
        sh("ip", "addr", "add", f"{host.root_address}/24", "dev", host.veth)
        sh("ip", "link", "set", host.veth, "up")
        inside = ("ip", "netns", "exec", host.netns)
        sh(*inside, "ip", "addr", "add", f"{host.address}/24", "dev", inner)
        sh(*inside, "ip", "link", "set", inner, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        for port in self.ports:
            host.bridges.append(self._socat(
                [], f"TCP-LISTEN:{port},bind={host.root_address},fork,reuseaddr", f"TCP:127.0.0.1:{port}"))
            host.bridges.append(self._socat(
                list(inside), f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                f"TCP:{host.root_address}:{port}"))
        return host

    @staticmethod
    def _socat(prefix: list[str], listen: str, connect: str) -> subprocess.Popen:
        return subprocess.Popen([*prefix, "socat", listen, connect], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def remove(self) -> None:
        for host in self.hosts:
            for bridge in host.bridges:
                if bridge.poll() is None:
                    os.killpg(bridge.pid, signal.SIGKILL)
                    bridge.wait(5)
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True, timeout=20)
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=20)


@pytest.fixture
def slow_mock() -> Iterator[MockHandle]:
    with running_mock_process(api_keys=[SECRET], latency_ms=LATENCY_MS, rpm=MOCK_RPM) as handle:
        yield handle


@pytest.fixture
def hosts(slow_mock) -> Iterator[Hosts]:
    reason = why_namespaces_cannot_be_made()
    if reason:
        pytest.skip(reason)
    db = connection.settings_dict
    ports = [int(db["PORT"] or 5432), urlparse(settings.CELERY_BROKER_URL).port or 6379,
             urlparse(slow_mock.base_url).port]
    made = Hosts(ports)
    try:
        yield made
    finally:
        made.remove()


def start_worker(stack: Stack, host: Host) -> None:
    """A worker of two processes (one serving place) inside the host's namespace."""
    env = {**stack.env, "CONVEYOR_HOSTNAME": host.name}
    log = open(stack.logdir / f"{host.name}.log", "w")  # noqa: SIM115 - closed with the process
    stack.processes[host.name] = subprocess.Popen(
        ["ip", "netns", "exec", host.netns, sys.executable, "-m", "celery", "-A", "config", "worker",
         "-Q", "llm,control", "-c", "2", "-P", "prefork", "-n", f"{host.name}@%h", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "-l", "info"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def host_of_attempt(worker: str) -> str:
    return worker.rsplit(":", 1)[0]


def first_call_by_host(run) -> dict[str, float]:
    firsts: dict[str, float] = {}
    for worker, started in Attempt.objects.filter(run=run).values_list("worker", "started_at"):
        if started is None:
            continue
        host = host_of_attempt(worker)
        firsts[host] = min(firsts.get(host, started.timestamp()), started.timestamp())
    return firsts


def peak_in_flight(requests: list[dict]) -> int:
    """The most calls the mock was answering at once."""
    edges = sorted([(r["t"], 1) for r in requests] + [(r["t"] + (r["duration"] or 0), -1) for r in requests],
                   key=lambda edge: (edge[0], edge[1]))
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def test_two_hosts_share_a_run_and_a_host_cut_off_mid_run_loses_and_double_counts_nothing(
        owner, slow_mock, hosts, stack):
    stack.env.update({
        "TEST_SERVE_MAX_IN_FLIGHT": str(CEILING),
        "TEST_SERVE_SLICE_SECONDS": "60",  # no hand-over in this test: help is what brings a host in
        "TEST_SERVE_HELP_LAG_SECONDS": "0",  # every loop asks for help (each HELP_COOLDOWN_SECONDS)
        "TEST_PROVIDER_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
        "TEST_DATABASE_IDLE_IN_TRANSACTION_SECONDS": "5",
        "TEST_DATABASE_DEAD_PEER_SECONDS": "6",
    })
    one, two = hosts.add("h1"), hosts.add("h2")
    start_worker(stack, one)
    stack.beat()
    key = make_key(owner, base_url=slow_mock.base_url)
    wait_for(lambda: hosts_advertised() == 1, timeout=30, what="the first host advertised", stack=stack)
    run = make_run(owner, key, [f"essay {i}" for i in range(BLOCKS)], parallelism=PARALLELISM)
    wait_for(lambda: Attempt.objects.filter(run=run).exists(), timeout=30,
             what="the first host to serve", stack=stack)

    # A second host joins; the first host's loop, at its ceiling, asks for help, and the help goes to
    # the new host's own queue (the first host's spare process would have to drop it).
    start_worker(stack, two)
    wait_for(lambda: hosts_advertised() == 2, timeout=30, what="the second host advertised", stack=stack)
    joined = time.time()
    wait_for(lambda: two.name in first_call_by_host(run), timeout=20,
             what="the second host to start calls", stack=stack)
    print(f"the second host's first call came {first_call_by_host(run)[two.name] - joined:.1f} s "
          "after it advertised its place")

    # Cut the first host off, mid-run, for longer than a lease.
    cut, other = one, two
    cut_at = timezone.now()
    cut.cut_off()
    time.sleep(LEASE_SECONDS + 5)
    cut.reconnect()

    wait_for(lambda: run_status(run) == "complete", timeout=90, what="run to complete", stack=stack)
    # Its loop, reconnected, writes what it held; every such write is fenced (an Attempt not accepted).
    wait_for(lambda: Attempt.objects.filter(run=run, worker__startswith=f"{cut.name}:",
                                            accepted=False).exists(),
             timeout=45, what="the cut-off host's late writes", stack=stack)

    run.refresh_from_db()
    assert (run.completed_blocks, run.failed_blocks) == (BLOCKS, 0)
    assert not Block.objects.filter(run=run).exclude(status="succeeded").exists()
    # Every block exactly once: one accepted success each.
    accepted = (Attempt.objects.filter(run=run, accepted=True, outcome="succeeded")
                .values("block_id").annotate(n=Count("id")))
    assert sorted(row["n"] for row in accepted) == [1] * BLOCKS
    # No cost counted twice: every call is on the run's invoice once (its attempts, fenced ones
    # included, since the provider billed them), and no call is recorded twice.
    attempts = Attempt.objects.filter(run=run)
    assert run.cost_usd == attempts.aggregate(cost=Sum("cost_usd"))["cost"]
    request_ids = [r for r in attempts.values_list("request_id", flat=True) if r]
    assert len(request_ids) == len(set(request_ids))
    assert run.output_tokens <= slow_mock.stats(limit=0)["tokens"]["output_tokens"]
    # The other host served on after the cut.
    assert Attempt.objects.filter(run=run, worker__startswith=f"{other.name}:", accepted=True,
                                  started_at__gt=cut_at).exists()
    # The two hosts together never exceeded the lane's limits: the run's parallelism at the provider
    # and its rate limit (no 429).
    stats = slow_mock.stats(limit=0)
    assert "429" not in stats["by_status"]
    assert peak_in_flight(slow_mock.requests()) <= PARALLELISM


def hosts_advertised() -> int:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return client.zcount(HOSTS_KEY, time.time() * 1000, "+inf")
