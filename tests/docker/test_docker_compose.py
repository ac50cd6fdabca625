"""The compose files of docker/: their structure, and node settings that ``troupe node`` accepts.

Each file is read with PyYAML (merge keys resolved, as Compose does). A node's environment must
use only variables of the catalogue (``transport.service_settings.VARIABLES``) and resolve
without error through ``resolve_settings`` as ``troupe node`` would with no flags; peers must
name the other nodes where they listen, and Prometheus (``docker/prometheus.yml``, checked by
``promtool``) must discover every node on its ``METRICS_PORT``.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from transport.cli import build_parser
from transport.node_cli import NodeSettings, resolve_settings
from transport.service_settings import NAMES
from transport.testing import ROOT

DOCKER = ROOT / "docker"
CLUSTERS = {
    "compose.bully.yml": ("bully", 2),
    "compose.raft.yml": ("raft", 3),
    "compose.gossip.yml": ("gossip", 3),
}
SERVICES = ("redis", "mongo", "prometheus", "grafana")
NODE_ALIAS = "troupe-node"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / name).read_text())
    assert isinstance(data, dict)
    return data


def nodes_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("build", {}).get("dockerfile") == "docker/Dockerfile"
    }


def settings_of(svc: dict[str, Any]) -> NodeSettings:
    env = {k: str(v) for k, v in svc["environment"].items()}
    return resolve_settings(build_parser().parse_args(["node"]), env)


def published(svc: dict[str, Any]) -> dict[int, int]:
    """``{host port: container port}`` of a service."""
    out: dict[int, int] = {}
    for item in svc.get("ports", []):
        host, _, container = str(item).rpartition(":")
        out[int(host)] = int(container)
    return out


def test_there_is_one_compose_file_per_election_and_nothing_else() -> None:
    assert sorted(p.name for p in DOCKER.glob("compose*.yml")) == sorted(CLUSTERS)


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_a_compose_file_runs_its_nodes_beside_redis_mongo_prometheus_and_grafana(name: str) -> None:
    compose = load(name)
    election, count = CLUSTERS[name]
    services = compose["services"]
    nodes = nodes_of(compose)
    # Expect the nodes built from docker/Dockerfile with the repository as context, and the others
    assert len(nodes) == count and set(services) == {*nodes, *SERVICES}
    for svc in nodes.values():
        assert (DOCKER / svc["build"]["context"]).resolve() == ROOT
    for other in SERVICES:
        assert ":" in services[other]["image"] and not services[other]["image"].endswith(":latest")
    # Expect host ports unique, and named volumes declared, bind mounts present
    hosts = [port for svc in services.values() for port in published(svc)]
    assert len(hosts) == len(set(hosts)), hosts
    declared = set(compose.get("volumes") or {})
    for svc_name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), (svc_name, volume)
            else:
                assert source in declared, (svc_name, volume)
    # Expect every dependency to exist; nodes wait for healthy Redis and MongoDB
    for svc_name, svc in services.items():
        deps = svc.get("depends_on", [])
        assert set(deps) <= set(services), (svc_name, deps)
    for svc in nodes.values():
        assert svc["depends_on"] == {d: {"condition": "service_healthy"} for d in ("redis", "mongo")}
    assert "healthcheck" in services["redis"] and "healthcheck" in services["mongo"]
    assert set(services["prometheus"]["depends_on"]) == set(nodes)
    assert services["grafana"]["depends_on"] == ["prometheus"]
    assert compose["name"] == f"troupe-{election}"


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_nodes_are_configured_only_by_catalogued_variables_that_resolve(name: str) -> None:
    compose = load(name)
    election, _ = CLUSTERS[name]
    nodes = nodes_of(compose)
    settings = {svc_name: settings_of(svc) for svc_name, svc in nodes.items()}
    for svc_name, svc in nodes.items():
        unknown = set(svc["environment"]) - NAMES
        assert not unknown, (svc_name, unknown)
        s = settings[svc_name]
        assert (s.election, s.store, s.redis.host, s.redis.port) == (election, "redis", "redis", 6379)
        assert s.service.mongo.uri == "mongodb://mongo:27017" and s.listen[0] == "0.0.0.0"
        assert s.job_modules == ("transport.demo_jobs",) and s.log_json
        # Published ports reach the API and the metrics inside
        assert set(published(svc).values()) == {s.service.http.port, s.service.metrics.port}
    ids = {svc_name: s.node_id for svc_name, s in settings.items()}
    assert len(set(ids.values())) == len(ids)
    # Expect each node's peers to be exactly the other nodes, at their service name and listen port
    for svc_name, s in settings.items():
        expected = {ids[o]: (o, settings[o].listen[1]) for o in settings if o != svc_name}
        assert s.peers == expected, (svc_name, s.peers)
        assert nodes[svc_name]["hostname"] == svc_name


def test_prometheus_discovers_every_node_on_its_metrics_port() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "troupe"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == [NODE_ALIAS] and sd["type"] == "A"
    for name in CLUSTERS:
        compose = load(name)
        prometheus = compose["services"]["prometheus"]
        assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
        assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
        for svc_name, svc in nodes_of(compose).items():
            assert NODE_ALIAS in svc["networks"]["default"]["aliases"], (name, svc_name)
            assert settings_of(svc).service.metrics.port == sd["port"], (name, svc_name)


def test_promtool_accepts_the_prometheus_configuration() -> None:
    done = subprocess.run(
        ["promtool", "check", "config", str(DOCKER / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
