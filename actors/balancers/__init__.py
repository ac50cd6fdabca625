"""Load balancing: which worker gets the next job, as pure strategies selected by name.

See :mod:`actors.balancers._base` for what every strategy promises and
:mod:`actors.balancers.strategies` for each one; ``make_strategy(LOAD_BALANCER_STRATEGY)``
builds one, and :class:`WorkerPool` is the worker table a balancer keeps around it.
"""

from ._base import HIGH_PRIORITY as HIGH_PRIORITY
from ._base import Strategy as Strategy
from ._base import WorkerView as WorkerView
from .pool import WorkerPool as WorkerPool
from .strategies import STRATEGIES as STRATEGIES
from .strategies import LeastLoaded as LeastLoaded
from .strategies import LeastRecentlyUsed as LeastRecentlyUsed
from .strategies import PowerOfTwoChoices as PowerOfTwoChoices
from .strategies import PriorityBased as PriorityBased
from .strategies import RandomChoice as RandomChoice
from .strategies import RoundRobin as RoundRobin
from .strategies import make_strategy as make_strategy
