"""The zray wire protocol, the code counterpart of docs/protocol.md: the codec
(`codec.py`: framing, registry, encode/decode) and every message record (`messages/`, one
module per area), under one name, so code reads `protocol.PushTask` wherever a record lives.

Importing this module registers every record; `message_types()` lists them by code.
"""

from zray._private.wire.codec import (
    MAX_NUM_RETURNS,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
    message,
    message_types,
)
from zray._private.wire.messages.actors import *  # noqa: F403
from zray._private.wire.messages.client import *  # noqa: F403
from zray._private.wire.messages.cluster import *  # noqa: F403
from zray._private.wire.messages.memory import *  # noqa: F403
from zray._private.wire.messages.node import *  # noqa: F403
from zray._private.wire.messages.observability import *  # noqa: F403
from zray._private.wire.messages.placement import *  # noqa: F403
from zray._private.wire.messages.tasks import *  # noqa: F403
from zray._private.wire.messages.transfer import *  # noqa: F403

__all__ = [
    "MAX_NUM_RETURNS",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "decode",
    "encode",
    "message",
    "message_types",
]
