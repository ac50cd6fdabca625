"""Leader elections as actors: Bully, Raft and Gossip (SWIM), behind one small interface.

See :mod:`actors.elections._common` for what every algorithm promises; each algorithm lives in
its own module (``bully``, ``raft``, ``gossip``) with a ``blueprint(nodes, config)``.
"""

from ._common import ALGORITHMS as ALGORITHMS
from ._common import NAME as NAME
from ._common import ElectionConfig as ElectionConfig
from ._common import GetLeader as GetLeader
from ._common import Leader as Leader
from ._common import LeaderChanged as LeaderChanged
from ._common import Leave as Leave
from ._common import Subscribe as Subscribe
