"""Job store backends: the job queue in memory, in SQLite or in Redis, behind one protocol.

See :mod:`transport.stores.base` for the contract and :func:`make_backend`; the members are
``memory_store``, ``sqlite_store`` and ``redis_store``. :class:`transport.store_service.StoreService`
hosts any of them as the actor named ``store``.
"""

from .base import STORE_KINDS as STORE_KINDS
from .base import JobStoreBackend as JobStoreBackend
from .base import StoreUnavailable as StoreUnavailable
from .base import make_backend as make_backend
from .base import sqlite_path as sqlite_path
from .memory_store import MemoryJobStore as MemoryJobStore
from .sqlite_store import SqliteJobStore as SqliteJobStore
