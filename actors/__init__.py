"""Troupe actors: pure state machines that act only through effects.

Nothing in this package does I/O, reads a clock, uses the global ``random`` module or creates
tasks or threads; the drivers (``sim`` and ``transport.runtime``) give time, randomness and
delivery through :class:`Context`, and execute the effects handlers return.
"""

from ._actor import Actor as Actor
from ._actor import NodeBlueprint as NodeBlueprint
from ._actor import combine as combine
from ._context import Context as Context
from ._context import Rng as Rng
from ._effects import EFFECT_TYPES as EFFECT_TYPES
from ._effects import CancelJob as CancelJob
from ._effects import CancelTimer as CancelTimer
from ._effects import Effect as Effect
from ._effects import Emit as Emit
from ._effects import ExecuteJob as ExecuteJob
from ._effects import JobDone as JobDone
from ._effects import Persist as Persist
from ._effects import Send as Send
from ._effects import SetTimer as SetTimer
from ._effects import Spawn as Spawn
from ._effects import Stop as Stop
from ._effects import Sync as Sync
from ._messages import ActorRef as ActorRef
from ._messages import RegistrationError as RegistrationError
from ._messages import class_of as class_of
from ._messages import is_message as is_message
from ._messages import message as message
from ._messages import registered as registered
from ._messages import tag_of as tag_of
