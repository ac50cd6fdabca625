"""Schemathesis against a real ``troupe node`` process: for every operation in the served
``/openapi.json``, generated requests (valid ones and invalid ones) never get a 5xx, and every
answer has a documented status, content type and a body matching the documented schema; the
node neither dies nor logs an ``http.error``. ``SCHEMATHESIS_EXAMPLES`` (default 25 per
operation and mode) runs it deeper: 300 took 2.5 minutes here, with no failure.

schemathesis's own pytest integration (``from_fixture(...).parametrize()``) reads
``request.node._nodeid``, which pytest 9 no longer has, so each operation's strategy is driven
by a plain ``@given`` instead (the same checks ``call_and_validate`` runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from transport.cluster import free_ports
from transport.testing import NodeProc, node_cmd, poll

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CALLS = {GenerationMode.POSITIVE: 0, GenerationMode.NEGATIVE: 0}


def _healthy(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok")
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    argv = node_cmd(
        "--id", "n1", "--listen", f"127.0.0.1:{free_ports(1)[0]}", "--data-dir", str(tmp), "--log-json",
        "--election-timeout", "300ms", "--election-interval", "100ms", "--jobs-module", "transport.demo_jobs",
    )  # fmt: skip
    node = NodeProc("n1", argv, tmp, {"SERVER_HOST": "127.0.0.1"})
    try:
        node.start()
        assert poll(lambda: bool(node.find("node.ready")), 30), "\n".join(node.lines[-20:])
        url = f"http://{node.find('node.ready')[0]['http']}"
        assert poll(lambda: _healthy(url), 30), "\n".join(node.lines[-20:])
        yield url
        assert node.proc is not None and node.proc.poll() is None, "the node died under schemathesis"
        assert not node.find("http.error"), node.find("http.error")
    finally:
        node.kill()


def _run(operation: Any, mode: GenerationMode, base_url: str) -> str | None:
    """Run ``EXAMPLES`` generated cases of one operation; the failure (one block of text) or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        CALLS[mode] += 1
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        return None  # an operation without parameters or body has no invalid request to make
    except (Exception, BaseExceptionGroup) as e:  # a check failed: report it with the operation and mode
        return f"{operation.method.upper()} {operation.path} ({mode.value}): {e}"
    return None


@pytest.mark.slow
def test_no_server_errors_and_answers_match_the_schema(node_url: str) -> None:
    # Given the OpenAPI document the node serves
    schema = schemathesis.openapi.from_url(f"{node_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [f"{o.method} {o.path}" for o in operations]
    # When every operation gets valid and invalid generated requests, expect every check to pass
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := _run(operation, mode, node_url)) is not None
    ]
    assert not failures, "\n\n".join(failures)
    assert CALLS[GenerationMode.POSITIVE] >= 10 * len(operations) and CALLS[GenerationMode.NEGATIVE] >= 100, (
        CALLS
    )
