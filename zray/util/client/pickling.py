"""Payloads of ray:// requests and replies: pickle 5 with out-of-band buffers (sent as frames,
never copied into the pickle), and ObjectRefs and actor handles as persistent ids.

A ref crosses the connection as ("ref", object id) and an actor handle as ("actor", actor id,
class name, method table): the session process holds the real ref or handle on the client's
behalf, the client holds a stand-in for it (zray/util/client/worker.py). So nothing the
client holds names an address the cluster would have to dial back.
"""

from __future__ import annotations

import io
import pickle

import cloudpickle


def dumps(pickler_class, value, *extra) -> list:
    """[pickle metadata, buffer, ...] of `value`; `extra` goes to the pickler's constructor."""
    buffers: list = []
    stream = io.BytesIO()
    pickler_class(stream, buffers, *extra).dump(value)
    return [stream.getbuffer()] + [b.raw() for b in buffers]


def loads(unpickler_class, frames: list, *extra):
    if not frames:
        raise ValueError("an empty ray:// payload")
    return unpickler_class(io.BytesIO(frames[0]), frames[1:], *extra).load()


class Pickler(cloudpickle.Pickler):
    """cloudpickle (functions and classes of the client's __main__ go by value) whose
    `persistent_id` a side of the connection defines."""

    def __init__(self, stream, buffers: list):
        super().__init__(stream, protocol=5, buffer_callback=buffers.append)


class Unpickler(pickle.Unpickler):
    def __init__(self, stream, buffers: list):
        super().__init__(stream, buffers=buffers)
