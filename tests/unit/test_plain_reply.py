"""A worker's answer of one builtin scalar (zray/_private/worker/worker_main.py, `_plain_reply`):
the bytes the general path sends for it, written whole, and only when nothing else applies."""

import pytest

from zray._config import config
from zray._fast import Unpacker, object_id_for, object_size, random_id
from zray._private.core.serialization import serialize_plain
from zray._private.wire import protocol as P
from zray._private.worker import worker_main


class Core:
    class endpoint:
        sent = 3


class Connection:
    def __init__(self, accepts=True):
        self.sent, self.accepts = [], accepts

    def send_framed(self, buffers, hold=False):
        self.sent.extend(buffers)
        return self.accepts


TASK = random_id(24)


@pytest.mark.parametrize("value", [b"ok", 7, None, "text", (1, 2.5, "x"), [True, None]])
def test_a_scalar_answer_is_the_general_task_done(value):
    connection = Connection()
    assert worker_main._plain_reply(Core, TASK, 0, value, connection, 3)
    (data,) = connection.sent
    (frames,) = Unpacker().feed(data)
    msg, seq, flags = P.decode(frames[0].buffer, frames[1].buffer)
    meta = serialize_plain(value)
    oid = object_id_for(TASK, 1)
    assert msg == P.TaskDone(TASK, [[oid, 0, 1, b"", object_size(len(meta), [])]], 0, [])
    assert (seq, flags, [bytes(f.buffer) for f in frames[2:]]) == (0, 0, [meta])


def test_other_answers_take_the_general_path(monkeypatch):
    connection = Connection()
    assert not worker_main._plain_reply(Core, TASK, 0, object(), connection, 3)  # not plain
    assert not worker_main._plain_reply(Core, TASK, 0, b"x", connection, 2)  # zmq sent since
    monkeypatch.setattr(config, "max_inline_bytes", 10)
    assert not worker_main._plain_reply(Core, TASK, 0, b"x" * 100, connection, 3)  # too large
    assert connection.sent == []
    assert not worker_main._plain_reply(Core, TASK, 5, b"x", object(), 3)  # no direct connection
    closed = Connection(accepts=False)
    assert not worker_main._plain_reply(Core, TASK, 0, b"x", closed, 3)
