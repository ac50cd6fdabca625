"""A private ``prometheus``: own port, own directory, scraping the targets it is given.

How it works
------------
:class:`PrometheusServer` writes a configuration with one scrape job, ``troupe``, whose targets
come from file service discovery (``targets/*.json`` in its directory), and starts
``prometheus`` (``/usr/bin/prometheus`` unless ``PROMETHEUS`` names another) on a free port of
127.0.0.1 with its TSDB in that directory. :meth:`PrometheusServer.start` returns once
``/-/ready`` answers 200. Targets may be added before or after the start
(:meth:`PrometheusServer.add_targets`, written atomically), so a test can start Prometheus
first and point it at a node once the node prints its port: Prometheus hands discovered
targets to its scrapers at most every 5 s, so starting it early hides that delay.

:meth:`PrometheusServer.query` runs an instant PromQL query through the HTTP API
(``/api/v1/query``) and returns the result vector; :meth:`PrometheusServer.wait_for` repeats
a query until a condition on its result holds. Used by the metrics and dashboard tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .server_process import ServerProcess

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")

Vector = list[dict[str, Any]]
"""An instant query's result: ``[{"metric": {label: value}, "value": [time, "text"]}, ...]``."""


class PrometheusError(RuntimeError):
    """Prometheus did not start, or refused a query (one line: why)."""


class PrometheusServer(ServerProcess):
    """One ``prometheus`` process of our own (see the module docstring).

    Args:
        directory: where the configuration, targets and TSDB go (default: a new temporary
            directory, removed by :meth:`close`).
        port: the web port (default: a free one).
        scrape_interval: seconds between scrapes of each target.
        scheme: ``http`` or ``https`` for the targets.
        ca_file: the CA that signed the targets' certificates (``https``).
    """

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        scrape_interval: float = 1.0,
        scheme: str = "http",
        ca_file: Path | None = None,
    ) -> None:
        super().__init__(directory, port, "troupe-prometheus-")
        self.scrape_interval = scrape_interval
        self.scheme = scheme
        self.ca_file = ca_file
        self._groups = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_text(self) -> str:
        """The ``prometheus.yml`` this server runs with (JSON is YAML)."""
        job: dict[str, Any] = {
            "job_name": "troupe",
            "scheme": self.scheme,
            "scrape_interval": f"{self.scrape_interval:g}s",
            "scrape_timeout": f"{self.scrape_interval:g}s",
            "file_sd_configs": [{"files": [str(self.dir / "targets" / "*.json")], "refresh_interval": "1s"}],
        }
        if self.ca_file is not None:
            job["tls_config"] = {"ca_file": str(self.ca_file)}
        return json.dumps({"global": {"evaluation_interval": "1s"}, "scrape_configs": [job]}, indent=2)

    def add_targets(self, targets: Iterable[str], labels: Mapping[str, str] | None = None) -> None:
        """Scrape ``host:port`` ``targets`` too, with extra ``labels`` on their series."""
        folder = self.dir / "targets"
        folder.mkdir(parents=True, exist_ok=True)
        self._groups += 1
        final = folder / f"group{self._groups}.json"
        temp = folder / f".group{self._groups}.tmp"
        temp.write_text(json.dumps([{"targets": list(targets), "labels": dict(labels or {})}]))
        temp.replace(final)  # atomic: Prometheus never reads half a file

    def start(self, timeout: float = 20.0) -> None:
        """Start Prometheus and wait until it is ready.

        Raises:
            PrometheusError: the binary is missing, exited, or was not ready in ``timeout``.
        """
        if self.running:
            return
        if not Path(PROMETHEUS).exists():
            raise PrometheusError(f"{PROMETHEUS} not found: install prometheus or set PROMETHEUS")
        (self.dir / "targets").mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(self.config_text())
        log = (self.dir / "prometheus.log").open("ab")
        args = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'tsdb'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--log.level=warn",
        ]
        with log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus on port {self.port} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise PrometheusError(f"prometheus on port {self.port} was not ready in {timeout:g} s")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, chars: int = 600) -> str:
        path = self.dir / "prometheus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def query(self, promql: str) -> Vector:
        """The result vector of an instant query.

        Raises:
            PrometheusError: the query is refused (bad PromQL) or Prometheus does not answer.
        """
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10.0) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        except (OSError, ValueError) as e:
            raise PrometheusError(f"query {promql!r}: {e}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r}: {body.get('error', body)}")
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def wait_for(self, promql: str, condition: Callable[[Vector], bool], timeout: float = 30.0) -> Vector:
        """Repeat ``promql`` until ``condition(result)`` holds; the last result.

        Raises:
            PrometheusError: the condition did not hold within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if condition(result):
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"{promql!r} still gives {result!r} after {timeout:g} s")
            time.sleep(0.25)


def values(vector: Vector) -> list[float]:
    """The sample values of a result vector, as floats (``NaN`` included)."""
    return [float(sample["value"][1]) for sample in vector]
