"""The common actor call's wire work in one call each way (pure-Python twin of ``calls.pyx``).

See calls.pyx: `frame_actor_call` and `frame_task_done` are the general encoder's buffers
for such a call and such an answer joined, and `plain_answer` recognizes the `TaskDone` of one
inline value and nothing else.
"""

from __future__ import annotations

import msgpack

from zray._fast._stream_py import MAX_MESSAGE_BYTES, too_large

PUSH_FIELDS = 11  # PushActorTask's fields (tests/unit/test_fast_calls.py checks the record)
TASK_DONE_FIELDS = 4  # TaskDone's

_pack = msgpack.Packer(use_bin_type=True).pack


def frame_actor_call(
    header: bytes,
    actor_id: bytes,
    task_id: bytes,
    method: str,
    owner_address: str,
    attempt: int,
    arguments: bytes,
) -> bytes:
    """One direct-connection message (frame table and frames, joined) carrying a
    `PushActorTask` of one return, no resolved or borrowed refs, the default concurrency
    group and no generator backpressure, with `arguments` (the pickled (args, kwargs)) as its
    one payload frame. `header` is the message's 8-byte header (protocol.encode's first).
    Raises MessageTooLarge, as `pack` does, for a message a reader would refuse."""
    for name, value, kind in (
        ("header", header, bytes),
        ("actor_id", actor_id, bytes),
        ("task_id", task_id, bytes),
        ("method", method, str),
        ("owner_address", owner_address, str),
        ("arguments", arguments, bytes),
    ):
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be {kind.__name__}, not {type(value).__name__}")
    if type(attempt) is not int:
        raise TypeError(f"attempt must be int, not {type(attempt).__name__}")
    if len(header) != 8:
        raise ValueError(f"message header must be 8 bytes, got {len(header)}")
    body = _pack([actor_id, task_id, method, 1, owner_address, 0, [], [], "", -1, attempt])
    return _framed(header, body, arguments)


def frame_task_done(
    header: bytes, task_id: bytes, object_id: bytes, size: int, lease_id: int, meta: bytes
) -> bytes:
    """One direct-connection message (frame table and frames, joined) carrying the `TaskDone`
    of one inline value without refs inside (`meta`: its pickle, no out-of-band buffer; `size`:
    its object size), for lease `lease_id` (0: an actor call). `header` is the message's 8-byte
    header (protocol.encode's first). Raises MessageTooLarge, as `pack` does, past a reader's
    limit."""
    for name, value in (("header", header), ("task_id", task_id), ("object_id", object_id)):
        if not isinstance(value, bytes):
            raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if not isinstance(meta, bytes):
        raise TypeError(f"meta must be bytes, not {type(meta).__name__}")
    if type(size) is not int or type(lease_id) is not int:
        raise TypeError("size and lease_id must be int")
    if len(header) != 8:
        raise ValueError(f"message header must be 8 bytes, got {len(header)}")
    body = _pack([task_id, [[object_id, 0, 1, b"", size]], lease_id, []])
    return _framed(header, body, meta)


def _framed(header: bytes, body: bytes, payload: bytes) -> bytes:
    total = 16 + len(header) + len(body) + len(payload)
    if total > MAX_MESSAGE_BYTES:
        raise too_large(3, total)
    lengths = (3).to_bytes(4, "little") + b"".join(
        n.to_bytes(4, "little") for n in (len(header), len(body), len(payload))
    )
    return lengths + header + body + payload


def plain_answer(frames: list, version: int, code: int):
    """(task id, object id, node id, size) of a `TaskDone` (message type `code`, protocol
    `version`, no flags) answering an actor call (lease 0) with one inline value whose frames
    are the message's payload and no refs inside it; None for any other message, well formed
    or not. `frames` are a message's frames as the stream's Unpacker returns them."""
    return _plain(frames, version, code, False)


def plain_task_answer(frames: list, version: int, code: int):
    """`plain_answer` of a task's answer: (task id, object id, node id, size, lease id) of a
    `TaskDone` for a leased worker's task (lease > 0), else None."""
    return _plain(frames, version, code, True)


def _plain(frames: list, version: int, code: int, leased: bool):
    if type(frames) is not list:
        raise TypeError(f"frames must be a list, not {type(frames).__name__}")
    if len(frames) < 3:
        return None
    try:
        header, body = bytes(frames[0].buffer), bytes(frames[1].buffer)
    except (BufferError, TypeError, AttributeError):
        return None
    if len(header) != 8 or header[:4] != bytes([version & 0xFF, code & 0xFF, 0, 0]):
        return None
    if header[0] != version or header[1] != code:
        return None
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except Exception:  # noqa: BLE001 - msgpack raises several unrelated classes on garbage
        return None
    if type(fields) is not list or len(fields) != TASK_DONE_FIELDS:
        return None
    task_id, returns, lease_id, contained = fields
    if type(task_id) is not bytes or type(returns) is not list or len(returns) != 1:
        return None
    entry = returns[0]
    if type(entry) is not list or len(entry) != 5:
        return None
    object_id, kind, nframes, node_id, size = entry
    if (
        type(object_id) is not bytes
        or type(kind) is not int
        or type(nframes) is not int
        or type(node_id) is not bytes
        or type(size) is not int
        or type(lease_id) is not int
        or type(contained) is not list
    ):
        return None
    if contained or kind != 0 or nframes != len(frames) - 2:
        return None
    if leased:
        return (task_id, object_id, node_id, size, lease_id) if lease_id > 0 else None
    if lease_id != 0:
        return None
    return (task_id, object_id, node_id, size)


__all__ = [
    "PUSH_FIELDS",
    "TASK_DONE_FIELDS",
    "frame_actor_call",
    "frame_task_done",
    "plain_answer",
    "plain_task_answer",
]
