"""The job engine's pure foundations: the job record, its lifecycle, retry backoff, the queue.

- ``_model``: :class:`Job`, :class:`Attempt`, statuses and priorities (``parse_priority``);
- ``_transitions``: the lifecycle as a table (:data:`JOB_TRANSITIONS`), its events and
  :func:`apply`, which returns the next version of a job or raises :class:`IllegalTransition`;
- ``_retry``: :class:`RetryPolicy` (fixed or exponential backoff with jitter from ``ctx.random``);
- ``_queue``: :class:`ReadyQueue`, job ids by priority then FIFO, with delayed jobs.

Nothing here does I/O or reads a clock: times come in as arguments (``ctx.wall``) and
randomness as an :class:`actors.Rng` (``ctx.random``).
"""

from ._model import CANCELLED as CANCELLED
from ._model import DEAD as DEAD
from ._model import DEFAULT_MAX_RETRIES as DEFAULT_MAX_RETRIES
from ._model import DEFAULT_TIMEOUT_SECONDS as DEFAULT_TIMEOUT_SECONDS
from ._model import FAILED as FAILED
from ._model import OUTCOME_CANCELLED as OUTCOME_CANCELLED
from ._model import OUTCOME_FAILED as OUTCOME_FAILED
from ._model import OUTCOME_LEASE_EXPIRED as OUTCOME_LEASE_EXPIRED
from ._model import OUTCOME_RUNNING as OUTCOME_RUNNING
from ._model import OUTCOME_SUCCESS as OUTCOME_SUCCESS
from ._model import OUTCOMES as OUTCOMES
from ._model import PENDING as PENDING
from ._model import PRIORITY_ALIASES as PRIORITY_ALIASES
from ._model import PRIORITY_HIGH as PRIORITY_HIGH
from ._model import PRIORITY_LOW as PRIORITY_LOW
from ._model import PRIORITY_MAX as PRIORITY_MAX
from ._model import PRIORITY_MIN as PRIORITY_MIN
from ._model import PRIORITY_NORMAL as PRIORITY_NORMAL
from ._model import RETRYING as RETRYING
from ._model import RUNNING as RUNNING
from ._model import STATUSES as STATUSES
from ._model import SUCCESS as SUCCESS
from ._model import TERMINAL_STATUSES as TERMINAL_STATUSES
from ._model import Attempt as Attempt
from ._model import Job as Job
from ._model import parse_priority as parse_priority
from ._queue import ReadyQueue as ReadyQueue
from ._retry import ENV_FIELDS as ENV_FIELDS
from ._retry import EXPONENTIAL as EXPONENTIAL
from ._retry import FIXED as FIXED
from ._retry import RETRY_KINDS as RETRY_KINDS
from ._retry import RetryPolicy as RetryPolicy
from ._retry import parse_duration as parse_duration
from ._transitions import EVENT_TYPES as EVENT_TYPES
from ._transitions import FAILURE_TARGETS as FAILURE_TARGETS
from ._transitions import JOB_TRANSITIONS as JOB_TRANSITIONS
from ._transitions import LEASE_EXPIRED_ERROR as LEASE_EXPIRED_ERROR
from ._transitions import Cancelled as Cancelled
from ._transitions import Dispatched as Dispatched
from ._transitions import Failed as Failed
from ._transitions import IllegalTransition as IllegalTransition
from ._transitions import JobEvent as JobEvent
from ._transitions import LeaseExpired as LeaseExpired
from ._transitions import LeaseRenewed as LeaseRenewed
from ._transitions import Requeued as Requeued
from ._transitions import Retry as Retry
from ._transitions import Succeeded as Succeeded
from ._transitions import allowed_events as allowed_events
from ._transitions import apply as apply
from ._transitions import can_apply as can_apply
