"""The Grafana provisioning of docker/: the datasource, the dashboard provider, and the dashboard.

The dashboard must be valid Grafana JSON (unique panel ids and refIds, panels inside the
24-column grid without overlapping), use the provisioned datasource, filter by the ``$node``
variable, cover the panels the deployment promises, and hold PromQL that ``promtool`` parses.
(That every panel returns data from a live node is tested in tests/metrics/test_metrics_prometheus.py.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from transport.testing import ROOT

GRAFANA = ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "troupe.json"
TOPICS = (
    "job rate",
    "by outcome",
    "workers",
    "queue depth",
    "dead letters",
    "percentiles",
    "retries",
    "lease expiries",
    "leader changes",
)


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def datasource() -> dict[str, Any]:
    (path,) = (GRAFANA / "provisioning" / "datasources").glob("*.yml")
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert isinstance(source, dict)
    return source


def test_the_datasource_is_the_compose_prometheus() -> None:
    source = datasource()
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"  # the service and its --web.listen-address


def test_the_dashboard_provider_loads_the_mounted_dashboards() -> None:
    (path,) = (GRAFANA / "provisioning" / "dashboards").glob("*.yml")
    config = yaml.safe_load(path.read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    target = provider["options"]["path"]
    for compose in (ROOT / "docker").glob("compose.*.yml"):
        mounts = yaml.safe_load(compose.read_text())["services"]["grafana"]["volumes"]
        assert f"./grafana/dashboards:{target}:ro" in mounts, compose.name
        assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts, compose.name


def test_the_dashboard_is_well_formed_grafana_json() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        assert p["type"] in ("timeseries", "stat", "bargauge", "gauge", "table"), p["type"]


def test_every_query_uses_the_provisioned_datasource_and_the_node_filter() -> None:
    dash = dashboard()
    uid = datasource()["uid"]
    (variable,) = [v for v in dash["templating"]["list"] if v["name"] == "node"]
    assert variable["datasource"]["uid"] == uid and variable["includeAll"] and variable["allValue"] == ".*"
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == uid, p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid, (p["title"], t["refId"])
            assert 'node=~"$node"' in t["expr"], (p["title"], t["expr"])


def test_the_dashboard_covers_what_the_deployment_promises() -> None:
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    missing = [topic for topic in TOPICS if topic not in titles]
    assert not missing, (missing, titles)
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    assert any(e.startswith("histogram_quantile(0.95") for e in exprs)
    assert any("election_leader_changes_total" in e for e in exprs)


def test_promtool_parses_every_panel_query(tmp_path: Path) -> None:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    rules = [
        {"record": f"troupe:panel_{i}", "expr": e.replace("$__rate_interval", "1m").replace("$node", ".*")}
        for i, e in enumerate(exprs)
    ]
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout, done.stdout
