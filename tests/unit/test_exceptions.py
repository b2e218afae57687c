"""zray.exceptions against the Ray surface recorded in tests/data/ray_surface.json.

Ray itself is never imported: the JSON (made by perf/extract_ray_surface.py in
a separate Ray virtualenv) is the reference.
"""

import inspect
import io
import json
import os
import pickle
import re
import sys
import threading
from pathlib import Path

import cloudpickle
import pytest

import zray.exceptions as zex
from zray.exceptions import RayError, RayTaskError

SURFACE_PATH = Path(__file__).resolve().parents[1] / "data" / "ray_surface.json"
SURFACE = json.loads(SURFACE_PATH.read_text())
RAY_EXC = SURFACE["exceptions"]["classes"]
RAY_EXC_NAMES = sorted(n for n, c in RAY_EXC.items() if c["defined_in_ray_exceptions"])
ANSI = re.compile(r"\x1b\[[0-9;]*m")

TB = (
    "Traceback (most recent call last):\n"
    '  File "/x/y.py", line 3, in f\n'
    '    raise ValueError("boom")\n'
    "ValueError: boom"
)


# --- cause types used below (module level so plain pickle can find them) ----


class Weird(Exception):
    """__init__ with required positional and keyword-only args."""

    def __init__(self, a, b, *, c):
        super().__init__(f"{a}-{b}-{c}")
        self.a, self.b, self.c = a, b, c


class NeedsNew(Exception):
    """Custom __new__ that insists on two arguments."""

    def __new__(cls, x, y):
        self = super().__new__(cls, x, y)
        self.total = x + y
        return self


class ReadOnlyArgs(Exception):
    @property
    def args(self):
        return ("fixed",)


class WithProps(Exception):
    """Defines read-only properties clashing with RayTaskError field names."""

    @property
    def pid(self):
        return "cause-pid"

    def __init__(self, msg):
        super().__init__(msg)
        self.detail = msg.upper()


class CodeError(Exception):
    """__init__ formats the message: default exception pickling re-runs
    __init__ with the formatted message and corrupts it."""

    def __init__(self, code):
        super().__init__(f"code {code}")
        self.code = code


class NoSubclass(Exception):
    def __init_subclass__(cls, **kw):
        raise TypeError("final class")


class _Meta(type):
    def __new__(mcls, name, bases, ns):
        if any(isinstance(b, _Meta) for b in bases) and name != "MetaExc":
            raise TypeError("no subclasses allowed by metaclass")
        return super().__new__(mcls, name, bases, ns)


class MetaExc(Exception, metaclass=_Meta):
    pass


def _task_error(cause, tb=TB, **kw):
    kw.setdefault("pid", 1234)
    kw.setdefault("ip", "10.0.0.1")
    return RayTaskError("__main__.f", tb, cause, **kw)


def _roundtrip(obj, dumps):
    return pickle.loads(dumps(obj))


DUMPERS = [
    pytest.param(pickle.dumps, id="pickle"),
    pytest.param(cloudpickle.dumps, id="cloudpickle"),
]


# --- surface parity -----------------------------------------------------------


def test_surface_file_lists_core_exceptions():
    for name in (
        "RayError",
        "RayTaskError",
        "GetTimeoutError",
        "ActorDiedError",
        "ObjectLostError",
        "OwnerDiedError",
        "TaskCancelledError",
        "WorkerCrashedError",
        "RayActorError",
        "ActorUnavailableError",
    ):
        assert name in RAY_EXC_NAMES


@pytest.mark.parametrize("name", RAY_EXC_NAMES)
def test_exception_exists_with_same_bases_and_mro(name):
    ref = RAY_EXC[name]
    cls = getattr(zex, name, None)
    assert inspect.isclass(cls) and issubclass(cls, BaseException), name
    assert [b.__name__ for b in cls.__bases__] == ref["bases"]
    assert [c.__name__ for c in cls.__mro__] == ref["mro"]
    assert name in zex.__all__


def _params(sig_record):
    return [(p["name"], p["kind"], p.get("default")) for p in sig_record["parameters"]]


@pytest.mark.parametrize("name", RAY_EXC_NAMES)
def test_exception_init_signature_matches_ray(name):
    ref = RAY_EXC[name]["init_signature"]
    cls = getattr(zex, name)
    sig = inspect.signature(cls.__init__)
    ours = [
        (p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default))
        for p in sig.parameters.values()
    ]
    assert ours == _params(ref)


def test_ray_exception_types_list_matches():
    assert [c.__name__ for c in zex.RAY_EXCEPTION_TYPES] == SURFACE["exceptions"][
        "ray_exception_types_list"
    ]


def test_hierarchy_highlights():
    assert issubclass(zex.GetTimeoutError, RayError)
    assert issubclass(zex.GetTimeoutError, TimeoutError)
    assert issubclass(zex.ActorDiedError, zex.RayActorError)
    assert issubclass(zex.ActorUnavailableError, zex.RayActorError)
    assert issubclass(zex.OwnerDiedError, zex.ObjectLostError)
    assert issubclass(zex.ObjectReconstructionFailedError, zex.ObjectLostError)
    assert issubclass(zex.ReferenceCountingAssertionError, AssertionError)
    assert issubclass(zex.RayChannelTimeoutError, TimeoutError)
    assert issubclass(zex.ActorAlreadyExistsError, ValueError)


def test_get_timeout_error_is_timeout_error():
    with pytest.raises(TimeoutError) as info:
        raise zex.GetTimeoutError("Get timed out: some object(s) not ready.")
    assert isinstance(info.value, RayError)
    assert str(info.value) == SURFACE["live"]["bad_inputs"]["get_timeout"]["str"]


# --- RayTaskError formatting ------------------------------------------------


def test_task_error_str_matches_ray_format_with_zray_prefix():
    ref = SURFACE["live"]["ray_task_error_constructed"]
    err = RayTaskError(
        "f", ref["traceback_str"], ValueError("boom"), proctitle="zray::f", pid=1234, ip="10.0.0.1"
    )
    expected = ANSI.sub("", ref["str"]).replace("ray::f()", "zray::f()", 1)
    assert str(err) == expected
    assert str(err).splitlines()[0] == "zray::f() (pid=1234, ip=10.0.0.1)"


def test_task_error_actor_header_matches_ray_format():
    ref = SURFACE["live"]["ray_task_error_constructed"]
    err = RayTaskError(
        "m",
        ref["traceback_str"],
        ValueError("boom"),
        proctitle="zray::A.m",
        pid=1234,
        ip="10.0.0.1",
        actor_repr="<A object>",
        actor_id="abc",
    )
    expected = ANSI.sub("", ref["actor_variant_str"]).replace("ray::A.m()", "zray::A.m()", 1)
    assert str(err) == expected
    assert err.actor_id == "abc"


def test_task_error_defaults():
    err = RayTaskError("__main__.f", TB, ValueError("boom"))
    assert err.proctitle == "zray::f"
    assert err.pid == os.getpid()
    assert isinstance(err.ip, str) and err.ip
    assert str(err).startswith(f"zray::f() (pid={os.getpid()}, ip=")
    assert err.args[:3] == ("__main__.f", TB, err.cause)
    actor_err = RayTaskError("mod.A.m", TB, ValueError("boom"), actor_repr="<A>", actor_id="ab")
    assert actor_err.proctitle == "zray::A.m"


def test_task_error_hides_internal_frames():
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/site/zray/_private/worker_loop.py", line 10, in run\n'
        "    result = fn(*args)\n"
        "             ^^^^^^^^^\n"
        '  File "/home/u/job.py", line 3, in f\n'
        '    raise ValueError("boom")\n'
        "ValueError: boom\n"
    )
    text = str(_task_error(ValueError("boom"), tb=tb))
    assert "zray/_private" not in text and "^^^" not in text
    assert text.splitlines() == [
        "zray::f() (pid=1234, ip=10.0.0.1)",
        '  File "/home/u/job.py", line 3, in f',
        '    raise ValueError("boom")',
        "ValueError: boom",
    ]


def test_from_exception_captures_traceback():
    try:
        raise KeyError("k")
    except KeyError as e:
        err = RayTaskError.from_exception(e, "mod.g", pid=5, ip="1.1.1.1")
    assert err.cause.args == ("k",)
    assert "raise KeyError" in err.traceback_str
    text = str(err)
    assert text.startswith("zray::g() (pid=5, ip=1.1.1.1)")
    assert text.rstrip().endswith("KeyError: 'k'")


def test_unpicklable_cause_is_replaced():
    class Holder(Exception):
        pass

    cause = Holder("x")
    cause.lock = threading.Lock()
    err = _task_error(cause)
    assert type(err.cause) is RayError
    assert "isn't serializable" in str(err.cause)
    assert "ValueError: boom" in str(err.cause)  # original traceback kept
    assert _roundtrip(err, cloudpickle.dumps).cause.args == err.cause.args


# --- as_instanceof_cause ----------------------------------------------------


def test_dual_instance_basic():
    cause = ValueError("boom")
    err = _task_error(cause)
    dual = err.as_instanceof_cause()
    assert isinstance(dual, RayTaskError) and isinstance(dual, ValueError)
    assert isinstance(dual, RayError)
    ref = SURFACE["live"]["ray_task_error_constructed"]
    assert type(dual).__name__ == ref["dual_type"] == "RayTaskError(ValueError)"
    assert [c.__name__ for c in type(dual).__mro__] == ref["dual_mro"]
    assert repr(dual) == ref["dual_repr"]
    assert dual.args == (cause,)
    assert dual.cause is cause
    assert str(dual) == str(err)
    assert "boom" in str(dual) and 'raise ValueError("boom")' in str(dual)
    assert dual.traceback_str == TB and dual.pid == 1234 and dual.ip == "10.0.0.1"


def test_dual_is_caught_by_both_except_clauses():
    dual = _task_error(ValueError("boom")).as_instanceof_cause()
    with pytest.raises(ValueError):
        raise dual
    with pytest.raises(RayTaskError):
        raise dual
    try:
        raise dual
    except ValueError as e:
        assert e.cause.args == ("boom",)


def test_dual_class_cached_per_cause_class():
    a = _task_error(KeyError("a")).as_instanceof_cause()
    b = _task_error(KeyError("b")).as_instanceof_cause()
    c = _task_error(IndexError("c")).as_instanceof_cause()
    assert type(a) is type(b)
    assert type(a) is not type(c)
    assert isinstance(a, KeyError) and isinstance(c, IndexError)


def test_plain_exception_or_ray_error_cause_returns_self():
    err = _task_error(Exception("generic"))
    assert err.as_instanceof_cause() is err
    err2 = _task_error(RayError("inner"))
    assert err2.as_instanceof_cause() is err2


def test_dual_with_unusual_init_forwards_attributes():
    cause = Weird(1, 2, c=3)
    dual = _task_error(cause).as_instanceof_cause()
    assert isinstance(dual, Weird) and isinstance(dual, RayTaskError)
    assert (dual.a, dual.b, dual.c) == (1, 2, 3)
    assert dual.cause is cause


def test_dual_with_custom_new():
    cause = NeedsNew(2, 3)
    dual = _task_error(cause).as_instanceof_cause()
    assert isinstance(dual, NeedsNew)
    assert dual.total == 5


def test_dual_with_read_only_args_property():
    dual = _task_error(ReadOnlyArgs("x")).as_instanceof_cause()
    assert isinstance(dual, ReadOnlyArgs) and isinstance(dual, RayTaskError)
    assert "zray::f()" in str(dual)


def test_dual_with_clashing_properties_keeps_task_fields():
    dual = _task_error(WithProps("msg")).as_instanceof_cause()
    assert isinstance(dual, WithProps)
    assert str(dual).startswith("zray::f() (pid=1234, ip=10.0.0.1)")
    assert dual.detail == "MSG"


def test_dual_with_oserror_keeps_errno_fields():
    cause = FileNotFoundError(2, "No such file", "/nope")
    dual = _task_error(cause).as_instanceof_cause()
    assert isinstance(dual, FileNotFoundError) and isinstance(dual, OSError)
    assert dual.errno == 2 and dual.filename == "/nope"
    assert type(dual).__name__ == "RayTaskError(FileNotFoundError)"


def test_dual_with_base_exception_cause():
    dual = _task_error(KeyboardInterrupt()).as_instanceof_cause()
    assert isinstance(dual, KeyboardInterrupt) and isinstance(dual, RayTaskError)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_dual_with_exception_group():
    cause = ExceptionGroup("many", [ValueError("a"), KeyError("b")])  # noqa: F821
    dual = _task_error(cause).as_instanceof_cause()
    assert isinstance(dual, ExceptionGroup)  # noqa: F821
    assert dual.message == "many" and len(dual.exceptions) == 2


@pytest.mark.parametrize("cause_cls", [NoSubclass, MetaExc])
def test_unsubclassable_cause_falls_back_to_plain(cause_cls):
    err = _task_error(cause_cls("x"))
    assert err.as_instanceof_cause() is err
    assert type(err) is RayTaskError
    assert err.as_instanceof_cause() is err  # cached negative result


def test_nested_task_error_keeps_user_type():
    inner = _task_error(ValueError("inner")).as_instanceof_cause()
    outer = RayTaskError("__main__.g", TB.replace("in f", "in g"), inner, pid=1, ip="2.2.2.2")
    dual = outer.as_instanceof_cause()
    assert isinstance(dual, ValueError) and isinstance(dual, RayTaskError)
    assert dual.cause is inner
    assert str(dual).startswith("zray::g() (pid=1, ip=2.2.2.2)")


# --- pickling ---------------------------------------------------------------


@pytest.mark.parametrize("dumps", DUMPERS)
@pytest.mark.parametrize(
    "cause",
    [
        ValueError("boom"),
        Weird(1, 2, c=3),
        NeedsNew(1, 1),
        FileNotFoundError(2, "No such file", "/nope"),
        KeyError("k"),
    ],
    ids=lambda c: type(c).__name__,
)
def test_dual_pickle_roundtrip(dumps, cause):
    err = _task_error(cause, actor_repr="<A>", actor_id="ab")
    dual = err.as_instanceof_cause()
    back = _roundtrip(dual, dumps)
    assert type(back) is type(dual)  # same cached class in the same process
    assert isinstance(back, type(cause)) and isinstance(back, RayTaskError)
    assert str(back) == str(dual)
    assert type(back.cause) is type(cause) and back.cause.args == cause.args
    assert (back.pid, back.ip, back.actor_id, back.actor_repr) == (1234, "10.0.0.1", "ab", "<A>")
    plain = _roundtrip(err, dumps)
    assert type(plain) is RayTaskError and str(plain) == str(err)


def test_dual_with_local_cause_class_roundtrips_with_cloudpickle():
    class LocalError(Exception):
        def __init__(self, code):
            super().__init__(f"code {code}")
            self.code = code

    dual = _task_error(LocalError(7)).as_instanceof_cause()
    back = cloudpickle.loads(cloudpickle.dumps(dual))
    assert isinstance(back, RayTaskError)
    assert type(back).__name__ == "RayTaskError(LocalError)"
    assert back.code == 7
    assert str(back) == str(dual)


@pytest.mark.parametrize("dumps", DUMPERS)
def test_cause_with_formatting_init_restored_exactly(dumps):
    back = _roundtrip(_task_error(CodeError(7)).as_instanceof_cause(), dumps)
    assert isinstance(back, CodeError)
    assert back.cause.args == ("code 7",) and back.cause.code == 7
    assert str(back.cause) == "code 7"
    assert back.code == 7  # forwarded to the cause


@pytest.mark.parametrize("dumps", DUMPERS)
def test_builtin_keyword_fields_survive(dumps):
    cause = ImportError("no module", name="mod_x", path="/p")
    dual = _task_error(cause).as_instanceof_cause()
    assert isinstance(dual, ImportError) and dual.name == "mod_x" and dual.path == "/p"
    back = _roundtrip(dual, dumps)
    assert back.name == "mod_x" and back.cause.name == "mod_x"


def test_dual_unpickles_in_fresh_process(tmp_path):
    import subprocess

    blob = tmp_path / "err.pkl"
    errs = [
        _task_error(ValueError("boom")).as_instanceof_cause(),
        _task_error(FileNotFoundError(2, "No such file", "/nope")).as_instanceof_cause(),
    ]
    blob.write_bytes(cloudpickle.dumps(errs))
    code = (
        "import pickle, sys\n"
        "import zray.exceptions as zex\n"
        "a, b = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "assert isinstance(a, ValueError) and isinstance(a, zex.RayTaskError)\n"
        "assert type(a).__name__ == 'RayTaskError(ValueError)'\n"
        "assert isinstance(b, FileNotFoundError) and b.errno == 2\n"
        "print(str(a))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(blob)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(errs[0])


def test_dual_pickle_keeps_extra_attributes():
    dual = _task_error(ValueError("x")).as_instanceof_cause()
    dual.note = "extra"
    back = pickle.loads(pickle.dumps(dual))
    assert back.note == "extra"


def test_nested_dual_pickle_roundtrip():
    inner = _task_error(ValueError("inner")).as_instanceof_cause()
    outer = RayTaskError("__main__.g", TB, inner, pid=1, ip="2.2.2.2").as_instanceof_cause()
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(outer))
        assert isinstance(back, ValueError) and str(back) == str(outer)
        assert str(back.cause) == str(inner)


def _samples():
    return [
        zex.RayError("x"),
        zex.CrossLanguageError("java stack"),
        zex.TaskCancelledError("abcd", "because"),
        zex.TaskCancelledError(error_message="kw only"),
        zex.LocalRayletDiedError(),
        zex.WorkerCrashedError(),
        zex.RayActorError("aa", "msg", True, False),
        zex.ActorDiedError(),
        zex.ActorDiedError(
            {
                "class_name": "A",
                "actor_id": b"\x01\x02",
                "pid": 4,
                "node_ip_address": "1.2.3.4",
                "error_message": "killed",
            }
        ),
        zex.ActorDiedError(_task_error(ValueError("init failed"), actor_id="ff", actor_repr="<A>")),
        zex.ActorUnavailableError("restarting", b"\xab\xcd"),
        zex.ActorUnavailableError(error_message="gone", actor_id=None),
        zex.RaySystemError("sys", "tb"),
        zex.AuthenticationError("bad token"),
        zex.UserCodeException("u"),
        zex.ObjectStoreFullError("full"),
        zex.OutOfDiskError("disk"),
        zex.OutOfMemoryError("oom"),
        zex.NodeDiedError("node died"),
        zex.ObjectLostError("00ff", None, "a.py:1 | b.py:2"),
        zex.ObjectFetchTimedOutError("00ff", None, ""),
        zex.RpcError("rpc", 14),
        zex.ReferenceCountingAssertionError("00ff", None, ""),
        zex.ObjectFreedError("00ff", None, ""),
        zex.OwnerDiedError("00ff", b"10.0.0.1:1234", ""),
        zex.ObjectReconstructionFailedError("00ff", "OBJECT_UNRECONSTRUCTABLE_PUT"),
        zex.ObjectReconstructionFailedError(object_ref_hex="00ff", call_site="x"),
        zex.GetTimeoutError("Get timed out: some object(s) not ready."),
        zex.PlasmaObjectNotAvailable(),
        zex.AsyncioActorExit(),
        zex.RuntimeEnvSetupError("pip failed"),
        zex.RuntimeEnvSetupError(),
        zex.TaskPlacementGroupRemoved(),
        zex.ActorPlacementGroupRemoved(),
        zex.PendingCallsLimitExceeded("too many"),
        zex.TaskUnschedulableError("node dead"),
        zex.ActorUnschedulableError(error_message="node dead"),
        zex.ObjectRefStreamEndOfStreamError(),
        zex.StreamingGeneratorReplayInconsistentError("replay"),
        zex.OufOfBandObjectRefSerializationException("oob"),
        zex.RayChannelError("chan"),
        zex.RayChannelTimeoutError("chan timeout"),
        zex.RayCgraphCapacityExceeded("cap"),
        zex.RayDirectTransportError("rdt"),
        zex.UnserializableException("orig tb"),
        zex.ActorAlreadyExistsError("exists"),
        zex.ActorHandleNotFoundError("no handle"),
    ]


@pytest.mark.parametrize("dumps", DUMPERS)
def test_every_exception_roundtrips(dumps):
    samples = _samples()
    covered = {type(e).__name__ for e in samples} | {"RayTaskError"}
    assert set(RAY_EXC_NAMES) <= covered
    for e in samples:
        back = _roundtrip(e, dumps)
        assert type(back) is type(e)
        assert str(back) == str(e), type(e).__name__
        assert back.__dict__ == e.__dict__ or type(e) is zex.ActorDiedError


def test_to_bytes_from_bytes():
    dual = _task_error(ValueError("x")).as_instanceof_cause()
    back = RayError.from_bytes(dual.to_bytes())
    assert isinstance(back, ValueError) and str(back) == str(dual)
    junk = RayError.from_bytes(b"not a pickle")
    assert isinstance(junk, zex.UnserializableException)


# --- pickled names ------------------------------------------------------------
# zray.exceptions is a package whose files are free to change; pickles users may have stored
# name each class (and the RayTaskError rebuilder) as zray.exceptions.X and must keep loading.


class _NameRecorder(pickle.Unpickler):
    """Unpickles while noting every global the pickle names, whatever the protocol."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.names = []

    def find_class(self, module, name):
        self.names.append((module, name))
        return super().find_class(module, name)


def _names_in(data):
    recorder = _NameRecorder(data)
    recorder.load()
    return recorder.names


def _exception_classes():
    return {
        name: obj
        for name, obj in vars(zex).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    }


def test_the_exception_classes_are_ray_s():
    assert sorted(_exception_classes()) == RAY_EXC_NAMES
    assert {c["module"] for c in RAY_EXC.values()} == {"ray.exceptions"}


@pytest.mark.parametrize("name", sorted(_exception_classes()))
def test_every_exception_class_pickles_by_its_public_name(name):
    cls = getattr(zex, name)
    assert (cls.__module__, cls.__qualname__) == ("zray.exceptions", name)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert _names_in(pickle.dumps(cls, protocol)) == [("zray.exceptions", name)]
    assert _names_in(cloudpickle.dumps(cls)) == [("zray.exceptions", name)]


@pytest.mark.parametrize("dumps", DUMPERS)
def test_every_exception_instance_names_only_public_globals(dumps):
    task_error = _task_error(KeyError("k"))
    for error in _samples() + [task_error, task_error.as_instanceof_cause()]:
        ours = [n for n in _names_in(dumps(error)) if n[0].split(".")[0] == "zray"]
        assert ours and {module for module, _ in ours} == {"zray.exceptions"}, ours
        if not isinstance(error, RayTaskError):
            assert ("zray.exceptions", type(error).__name__) in ours
    assert type(task_error.as_instanceof_cause()).__module__ == "zray.exceptions"


# Written by zray.exceptions when it was one module (protocol 2): a dual RayTaskError(KeyError)
# and an OwnerDiedError, as a user's stored results would hold them.
OLD_DUAL_PICKLE = (
    b"\x80\x02czray.exceptions\n_rebuild_task_error\nq\x00((X\n\x00\x00\x00__main__.fq\x01X3\x00"
    b"\x00\x00Traceback (most recent call last):\nValueError: boomq\x02NX\x07\x00\x00\x00zray::fq"
    b"\x03K\x07X\x08\x00\x00\x0010.0.0.1q\x04NNtq\x05X\x03\x00\x00\x00objq\x06cexceptions\nKeyError"
    b"\nq\x07X\x01\x00\x00\x00kq\x08\x85q\tRq\n\x86q\x0b\x88Ntq\x0cRq\r."
)
OLD_OWNER_DIED_PICKLE = (
    b"\x80\x02czray.exceptions\nOwnerDiedError\nq\x00X\x04\x00\x00\x0000ffq\x01c_codecs\nencode\nq"
    b"\x02X\r\x00\x00\x0010.0.0.1:1234q\x03X\x06\x00\x00\x00latin1q\x04\x86q\x05Rq\x06X\x00\x00\x00"
    b"\x00q\x07\x87q\x08Rq\t}q\n(X\x0e\x00\x00\x00object_ref_hexq\x0bh\x01X\r\x00\x00\x00owner_addr"
    b"essq\x0ch\x06X\t\x00\x00\x00call_siteq\rh\x07ub."
)


def test_pickles_from_the_single_module_still_load():
    dual = pickle.loads(OLD_DUAL_PICKLE)
    assert isinstance(dual, RayTaskError) and isinstance(dual, KeyError)
    assert dual.cause.args == ("k",) and (dual.pid, dual.ip) == (7, "10.0.0.1")
    assert str(dual) == "zray::f() (pid=7, ip=10.0.0.1)\nValueError: boom"
    owner_died = pickle.loads(OLD_OWNER_DIED_PICKLE)
    assert type(owner_died) is zex.OwnerDiedError
    assert owner_died.owner_address == b"10.0.0.1:1234"
    assert pickle.dumps(owner_died, 2) == OLD_OWNER_DIED_PICKLE


# --- individual messages ----------------------------------------------------


def test_messages():
    assert str(zex.TaskCancelledError("t1")) == "Task: t1 was cancelled. "
    assert str(zex.TaskCancelledError()) == ""  # what Ray shows for a queued task
    assert str(zex.ActorDiedError()) == zex.ActorDiedError.BASE_ERROR_MSG
    assert (
        zex.ActorDiedError.BASE_ERROR_MSG
        == "The actor died unexpectedly before finishing this task."
    )
    died = zex.ActorDiedError(
        {
            "class_name": "A",
            "actor_id": "ab12",
            "pid": 4,
            "error_message": "The actor is dead because it was killed by `ray.kill`.",
        }
    )
    assert str(died).splitlines() == [
        "The actor died unexpectedly before finishing this task.",
        "\tclass_name: A",
        "\tactor_id: ab12",
        "\tpid: 4",
        "The actor is dead because it was killed by `ray.kill`.",
    ]
    assert died.actor_id == "ab12" and not died.actor_init_failed
    init_failed = zex.ActorDiedError.from_task_error(
        _task_error(ValueError("bad init"), actor_id="ff", actor_repr="<A>")
    )
    assert init_failed.actor_init_failed and init_failed.actor_id == "ff"
    assert "error raised in its creation task" in str(init_failed)
    unavailable = zex.ActorUnavailableError("restarting", b"\xab\xcd")
    assert unavailable.actor_id == "abcd"
    assert str(unavailable).startswith("The actor abcd is unavailable: restarting.")
    lost = zex.ObjectLostError("00ff", None, "a.py:1 | b.py:2")
    assert str(lost).startswith(
        "Failed to retrieve object 00ff. The ObjectRef was created at: a.py:1\n  b.py:2"
    )
    assert str(zex.TaskUnschedulableError("x")) == "The task is not schedulable: x"
    assert str(zex.RaySystemError("boom")) == "System error: boom"
    assert str(zex.RuntimeEnvSetupError("pip")) == "Failed to set up runtime environment.\npip"
    assert isinstance(zex.ActorAlreadyExistsError("dup"), ValueError)
