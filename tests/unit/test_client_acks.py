"""The ray:// client's acknowledgements never let the session forget a call that a request in
flight still names as pending (the session would answer "not a call this session knows").

The race: a call's answer lands while a later request that names the call's result is being
pickled. The fake channel below records what the client sends; the answer is delivered from
inside the pickling, at the worst moment."""

import io
import pickle

from zray._private.wire import protocol as P
from zray.util.client import pickling, worker as client_worker


class _RecordingChannel:
    def __init__(self, *args):
        self.sent: list = []

    def start(self):
        return self

    def send(self, messages):
        self.sent.extend(messages)


def _client(monkeypatch) -> client_worker.ClientWorker:
    monkeypatch.setattr(client_worker, "Channel", _RecordingChannel)
    return client_worker.ClientWorker("127.0.0.1:1", None, grace_period_s=30.0)


class _HandOut:
    def __init__(self, ref_id: bytes):
        self.ref_id = ref_id


class _RefIds(pickling.Pickler):
    """Pickles a _HandOut as the session does its hand-out of a ref."""

    def persistent_id(self, obj):
        return ("ref", obj.ref_id) if isinstance(obj, _HandOut) else None


def _answer(client, seq: int, ref_id: bytes):
    payload = [bytes(frame) for frame in pickling.dumps(_RefIds, [_HandOut(ref_id)])]
    client._on_message(P.ClientReply(seq, True, [len(f) for f in payload]), payload)


class _AnswerWhilePickled:
    """Delivers call `seq`'s answer when pickled, i.e. after the ref before it was pickled."""

    def __init__(self, client, seq, ref_id):
        self.args = (client, seq, ref_id)

    def __reduce__(self):
        _answer(*self.args)
        return (int, (0,))


def _requests(client) -> list:
    """(record, payload frames) of each request sent."""
    sent = [(P.decode(m[0], m[1])[0], m[2:]) for m in client.channel.sent]
    return [(record, payload) for record, payload in sent if isinstance(record, P.ClientRequest)]


def _named_ids(payload) -> list:
    """The persistent ids (refs, pending calls) a request's pickled value names."""
    ids = []

    class _Ids(pickle.Unpickler):
        def persistent_load(self, pid):
            ids.append(tuple(pid))

    _Ids(io.BytesIO(bytes(payload[0]))).load()
    return ids


def test_a_call_answered_while_a_request_names_it_travels_as_its_result(monkeypatch):
    client = _client(monkeypatch)
    ref_id = b"r" * 28
    pending_ref = client.submit("task", ("key", None, {}, (), {}), 1)
    ((first, _),) = _requests(client)

    # The answer to the first call arrives while the second request is being pickled.
    client.request_async("put", (pending_ref, _AnswerWhilePickled(client, first.seq, ref_id)))

    second, payload = _requests(client)[-1]
    assert second.acked > first.seq  # the session may forget the first call now...
    assert _named_ids(payload) == [("ref", ref_id)]  # ...as the request names its result


def test_a_pending_call_named_by_a_request_holds_back_the_ack(monkeypatch):
    client = _client(monkeypatch)
    pending_ref = client.submit("task", ("key", None, {}, (), {}), 1)
    ((first, _),) = _requests(client)
    client.request_async("put", (pending_ref,))
    later, payload = _requests(client)[-1]
    assert _named_ids(payload) == [("pending", first.seq, 0)]
    client.request_async("put", (1,))
    assert _requests(client)[-1][0].acked <= first.seq  # the first call is still named
