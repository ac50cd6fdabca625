"""A private ``redis-server`` per test module (see :mod:`transport.redis_server`).

In a test module::

    from troupe_testkit.redis_server import redis_server_fixture

    redis_server = redis_server_fixture()          # module-scoped fixture named redis_server

    async def test_something(redis_server):
        conn = RedisConn(port=redis_server.port)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from transport.redis_server import REDIS_SERVER as REDIS_SERVER
from transport.redis_server import RedisServer as RedisServer
from transport.redis_server import ping as ping
from transport.server_process import free_port as free_port


def redis_server_fixture(name: str = "redis_server", scope: Any = "module", fsync: bool = True) -> Any:
    """A pytest fixture (assign it to a module-level name) yielding a started :class:`RedisServer`."""

    @pytest.fixture(name=name, scope=scope)
    def _fixture() -> Iterator[RedisServer]:
        with RedisServer(fsync=fsync) as server:
            yield server

    return _fixture
