"""A real Prometheus scraping a real ``troupe node`` process that ran jobs: PromQL sees the job
outcomes, retries, dead letters, durations and the node's other series, and every panel of the
Grafana dashboard (docker/grafana/dashboards/troupe.json) returns data; and Prometheus scrapes a
node with TLS on over HTTPS, checking its certificate.

One module-scoped fixture serves the first three tests: Prometheus starts first (it hands new targets to
its scrapers only every 5 s), the node second; the node's metrics port (``METRICS_PORT=0``) is
read from its ``node.ready`` event and given to Prometheus as a file-discovered target.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from transport.cluster import free_ports
from transport.jobs_client import SyncJobClient
from transport.metrics import NodeMetrics
from transport.prometheus_server import PrometheusServer, Vector, values
from transport.testing import ROOT, NodeProc, node_cmd, poll

pytestmark = pytest.mark.slow

DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "troupe.json"
NOOPS, SLEEPS, BROKEN = 6, 2, 2
"""Jobs submitted: ``broken`` ones have one retry, so they fail twice each and end dead."""


@dataclass
class Scraped:
    prometheus: PrometheusServer
    node: NodeProc
    listen: str


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    tmp = tmp_path_factory.mktemp("scraped")
    prometheus = PrometheusServer(tmp / "prometheus", scrape_interval=1.0)
    (port,) = free_ports(1)
    argv = node_cmd(
        "--id", "m1", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp / "data"), "--store", "sqlite",
        "--election-timeout", "300ms", "--election-interval", "100ms", "--worker-heartbeat", "300ms",
        "--worker-offline-after", "1s", "--retry-base-delay", "100ms", "--retry-max-delay", "200ms",
        "--jobs-module", "transport.demo_jobs", "--workers", "3", "--log-json",
    )  # fmt: skip
    node = NodeProc("m1", argv, tmp, env={"SERVER_HOST": "127.0.0.1"})
    try:
        prometheus.start()
        node.start()
        assert poll(lambda: bool(node.find("node.ready")), 30), node.lines[-20:]
        metrics = node.find("node.ready")[0]["metrics"]
        prometheus.add_targets([metrics], {"cluster": "test"})
        # Jobs in two waves, each scraped: rate() needs a series to rise between two scrapes
        prometheus.wait_for('up{job="troupe"}', lambda v: values(v) == [1.0], timeout=30)
        with SyncJobClient(f"127.0.0.1:{port}", timeout=30) as client:
            for wave in (1, 2):
                client.submit_many(
                    [{"type": "noop"}] * (NOOPS // 2)
                    + [{"type": "sleep", "payload": {"seconds": 0.3}}] * (SLEEPS // 2)
                    + [{"type": "broken", "max_retries": 1}] * (BROKEN // 2)
                )
                idle = client.wait_idle(timeout=30)
                finished = (NOOPS + SLEEPS + 2 * BROKEN) // 2 * wave
                prometheus.wait_for(
                    "sum(troupe_jobs_total)", lambda v, n=finished: values(v) == [float(n)], timeout=30
                )
        assert idle["dlq"] == BROKEN, idle
        yield Scraped(prometheus, node, f"127.0.0.1:{port}")
    finally:
        node.kill()
        prometheus.close()


def number(vector: Vector) -> float:
    assert len(vector) == 1, vector
    return values(vector)[0]


def test_prometheus_scrapes_the_job_outcomes_of_a_node(scraped: Scraped) -> None:
    prom = scraped.prometheus
    # Expect Prometheus to reach the node and see every finished attempt
    up = prom.wait_for('up{job="troupe"}', lambda v: values(v) == [1.0], timeout=30)
    assert up[0]["metric"]["cluster"] == "test"
    success = 'sum(troupe_jobs_total{outcome="success"})'
    prom.wait_for(success, lambda v: bool(v) and values(v)[0] >= NOOPS + SLEEPS, timeout=30)
    assert number(prom.query(success)) == NOOPS + SLEEPS
    assert number(prom.query('sum(troupe_jobs_total{type="broken", outcome="failure"})')) == 2 * BROKEN
    assert number(prom.query('sum(troupe_job_retries_total{type="broken"})')) == BROKEN
    assert number(prom.query('sum(troupe_jobs_started_total{node="m1"})')) == NOOPS + SLEEPS + 2 * BROKEN
    # Expect the sampled queue depths and the derived dead-letter count
    prom.wait_for('queue_depth_gauge{state="dead"}', lambda v: values(v) == [float(BROKEN)], timeout=20)
    prom.wait_for("troupe_dead_letters_total", lambda v: values(v) == [float(BROKEN)], timeout=20)
    submitted = float(NOOPS + SLEEPS + BROKEN)
    prom.wait_for("troupe_jobs_submitted_total", lambda v: values(v) == [submitted], timeout=20)
    assert number(prom.query('queue_depth_gauge{state="success"}')) == NOOPS + SLEEPS
    # Expect durations measured: two sleeps of 0.3 s, noops well under 0.1 s
    sleeps = 'job_processing_duration_seconds_sum{type="sleep", outcome="success"}'
    assert 0.6 <= number(prom.query(sleeps)) < 3.0
    fast = 'job_processing_duration_seconds_bucket{type="noop", outcome="success", le="0.1"}'
    assert number(prom.query(fast)) == NOOPS
    # Expect the node's own series: leadership, uptime, worker slots, transport counters
    assert number(prom.query("troupe_is_leader")) == 1
    assert number(prom.query("election_leader_changes_total")) >= 1
    assert number(prom.query("node_uptime_seconds")) > 0
    assert number(prom.query('sum(worker_active_gauge{state=~"busy|idle"})')) == 3  # --workers
    assert number(prom.query('troupe_transport_messages_total{direction="received"}')) > 0
    # the client's submits arrived as StoreRequest messages and were answered with StoreReply
    by_type = 'troupe_messages_total{direction="%s", type="%s"}'
    assert number(prom.query(by_type % ("received", "StoreRequest"))) >= submitted
    assert number(prom.query(by_type % ("sent", "StoreReply"))) >= submitted
    # Expect every series the node exports to carry its node id
    unlabelled = prom.query('count({job="troupe", node!="m1", __name__!~"up|scrape_.*"})')
    assert unlabelled == [], unlabelled


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(f"{p['title']} / {t['refId']}", t["expr"]) for p in panels for t in p["targets"]]


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced as Grafana would for "All"."""
    return expr.replace("$__rate_interval", "1m").replace("$node", ".*")


def test_every_dashboard_panel_returns_data(scraped: Scraped) -> None:
    prom = scraped.prometheus
    queries = dashboard_queries()
    assert len(queries) >= 20
    empty: list[str] = []
    for name, expr in queries:
        promql = as_promql(expr)
        try:
            result = prom.wait_for(
                promql, lambda v: bool(v) and any(not math.isnan(x) for x in values(v)), 20
            )
        except RuntimeError:
            empty.append(f"{name}: {promql} -> {prom.query(promql)}")
            continue
        if expr.startswith("histogram_quantile"):
            assert all(0 < x < 10 for x in values(result) if not math.isnan(x)), (name, result)
    assert not empty, "\n".join(empty)


def test_the_dashboard_names_only_metrics_the_node_exports(scraped: Scraped) -> None:
    exported = {
        s["metric"]["__name__"] for s in scraped.prometheus.query('count by (__name__) ({job="troupe"})')
    }
    declared = {family.name for family in NodeMetrics("x").registry.collect()}
    names = re.compile(r"([a-z_:][a-z0-9_:]*)\{")
    for title, expr in dashboard_queries():
        for name in names.findall(expr):
            if expr.endswith("or vector(0)"):  # a series that exists once something went wrong
                assert name.removesuffix("_total") in declared, (title, name)
            else:
                assert name in exported, (title, name)


def test_prometheus_scrapes_a_node_over_https(tmp_path: Path) -> None:
    # Given a node with TLS on, its certificate signed by a CA Prometheus trusts
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "node.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "node.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    env = {
        "SERVER_HOST": "127.0.0.1",
        "TLS_ENABLED": "true",
        "TLS_CERT_FILE": str(tmp_path / "node.pem"),
        "TLS_KEY_FILE": str(tmp_path / "node.key"),
    }
    argv = node_cmd(
        "--id", "s1", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"), "--log-json"
    )
    node = NodeProc("s1", argv, tmp_path, env=env)
    prometheus = PrometheusServer(tmp_path / "prometheus", scheme="https", ca_file=tmp_path / "ca.pem")
    try:
        prometheus.start()
        node.start()
        assert poll(lambda: bool(node.find("node.ready")), 30), node.lines[-20:]
        prometheus.add_targets([node.find("node.ready")[0]["metrics"]])
        # Expect Prometheus to verify the certificate and scrape the node's series
        prometheus.wait_for('up{job="troupe"}', lambda v: values(v) == [1.0], timeout=30)
        assert number(prometheus.query('node_uptime_seconds{node="s1"}')) > 0
    finally:
        node.kill()
        prometheus.close()
