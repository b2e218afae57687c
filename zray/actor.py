"""Actors: what `@zray.remote` makes of a class, handles to running actors, `@method`, and
`exit_actor()`."""

from __future__ import annotations

import inspect

import cloudpickle

from zray._fast import Shared, object_id_for, random_id
from zray._private.common import definitions
from zray._private.common import task_states as TS
from zray._private.core import options as O
from zray._private.wire import protocol as P
from zray._private.core import runtime
from zray._private.common.packaging import for_call
from zray._private.core.actor_submitter import ActorCall
from zray._private.core.function_manager import function_id_of
from zray._private.core.arguments import NO_ARGUMENTS, pack_arguments
from zray._private.core.plain_calls import plain_defaults, submit_plain
from zray._private.core.serialization import is_plain, serialize_plain
from zray.object_ref import ObjectRef

_METHOD_OPTIONS = (
    "num_returns",
    "max_task_retries",
    "retry_exceptions",
    "concurrency_group",
    "enable_task_events",
    "_generator_backpressure_num_objects",
    "tensor_transport",
)
# Method options zray does not act on yet: warned about, as they do not change results.
_METHOD_SUPPORT = {
    "tensor_transport": O.Option(None, (), O.WARN),
}


def _check_method_options(options: dict):
    for key, value in options.items():
        if key not in _METHOD_OPTIONS and key != "name":
            raise ValueError(f"Invalid option keyword {key} for actor methods.")
        if key == "_generator_backpressure_num_objects" and not (
            value is None or (isinstance(value, int) and not isinstance(value, bool))
        ):
            raise TypeError(
                f"_generator_backpressure_num_objects must be an int, got {type(value).__name__}"
            )
        spec = _METHOD_SUPPORT.get(key)
        if spec is not None and not O.asks_for_nothing(value, spec.default):
            O.check_support(key, spec.support, value)


def _retry_exceptions(value):
    """False, True, or the tuple of exception classes a call that raised is retried for."""
    if value is None:
        return False
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if not isinstance(value, bool):
        raise AssertionError(  # Ray's check and words (an assert there)
            "retry_exceptions can either be boolean or list/tuple of exception types."
        )
    return value


def method(*args, **kwargs):
    """`@method(num_returns=2)` on an actor method sets its default call options."""
    if args:
        raise ValueError(
            "The @ray.method decorator must be applied using at least one of "
            "the arguments in the list ['num_returns', 'concurrency_group', "
            "'max_task_retries', 'retry_exceptions'], for example "
            "'@ray.method(num_returns=2)'."
        )
    if "name" in kwargs:
        raise ValueError("Invalid option keyword name for actor methods.")
    _check_method_options(kwargs)

    def annotate(function):
        function.__zray_method_options__ = dict(kwargs)
        return function

    return annotate


def exit_actor():
    """Ends the current actor on purpose, after the current call: it will not be restarted
    and calls still queued for it fail with ActorDiedError."""
    core = runtime.core
    if core is None or core.actor_host is None:
        raise TypeError(
            "exit_actor API is called on a non-actor worker, "
            f"{type(core).__name__ if core else 'no worker'}. Call this API inside "
            "an actor methods if you'd like to exit the actor gracefully."
        )
    from zray._private.worker.actor_host import ExitActor

    raise ExitActor()


class ActorClass:
    """What @remote returns for a class: `.remote(...)` creates an actor, `.options(...)` sets
    its options. Calling the class directly is an error, as in Ray."""

    def __init__(self, cls, options: dict):
        O.validate(options, O.ACTOR_OPTIONS, "actors", in_options_call=False)
        self._cls = cls
        self._default_options = options
        self._pickled = None
        self._class_id = None
        self._methods = _method_table(cls)
        self._is_async = any(
            inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
            for _, m in inspect.getmembers(cls, inspect.isfunction)
        )
        self.__name__ = cls.__name__
        self.__qualname__ = getattr(cls, "__qualname__", cls.__name__)
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of "
            f"'{self._cls.__name__}()', use '{self._cls.__name__}.remote()'."
        )

    def options(self, **options):
        O.validate(options, O.ACTOR_OPTIONS, "actors", in_options_call=True)
        merged = dict(self._default_options, **options)
        outer = self

        class _Bound:
            def remote(self, *args, **kwargs):
                return outer._create(args, kwargs, merged)

        return _Bound()

    def remote(self, *args, **kwargs):
        return self._create(args, kwargs, self._default_options)

    def _remote(self, args=None, kwargs=None, **actor_options):
        """Ray's lower-level entry point: constructor arguments and options in one call."""
        O.validate(actor_options, O.ACTOR_OPTIONS, "actors", in_options_call=True)
        return self._create(
            tuple(args or ()), dict(kwargs or {}), dict(self._default_options, **actor_options)
        )

    def bind(self, *args, **kwargs):
        raise NotImplementedError("zray does not support DAG bind() yet")

    def __reduce__(self):
        return ActorClass, (self._cls, self._default_options)

    def _export(self, core) -> bytes:
        if self._class_id is None:
            self._pickled = definitions.dumps(self._cls)
            self._class_id = function_id_of(self._pickled)
            core.functions.remember(self._class_id, self._cls)
        core.functions.export(self._class_id, self._pickled)
        return self._class_id

    def _create(self, args, kwargs, options):
        from zray._config import config

        if runtime.client is not None:
            return runtime.client.create_actor(self, args, kwargs, options)
        core = runtime.require_connected()
        name = options.get("name")
        namespace = options.get("namespace") or core.current_namespace()
        lifetime = options.get("lifetime")
        if lifetime not in (None, "detached", "non_detached"):
            raise ValueError(
                "actor `lifetime` argument must be one of 'detached', 'non_detached' and 'None'."
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Actor name must be a non-empty string, got {name!r}")
        if lifetime is None:
            lifetime = core.current_default_actor_lifetime()
        if options.get("get_if_exists") and name:
            existing = _lookup(core, name, namespace)
            if existing is not None:
                return existing
        # Checked at creation, as Ray does; only @remote's groups count (see the spec below).
        concurrency_groups = _concurrency_groups(
            self._default_options.get("concurrency_groups"), self._methods
        )
        class_id = self._export(core)
        actor_id = random_id(12) + core.current_job_id()
        placement, running = _actor_resources(options)
        from zray.util.placement_group import in_group, placement_of
        from zray.util.scheduling_strategies import encode as encode_strategy

        strategy = encode_strategy(options.get("scheduling_strategy"))
        group = ""
        in_bundle = placement_of(
            core, options, running, placement if placement != running else {}, self._cls.__name__
        )
        if in_bundle is not None:
            placement, strategy, group = in_group(placement, in_bundle)
            running = in_group(running, in_bundle)[0]
        max_concurrency = options.get("max_concurrency") or (1000 if self._is_async else 1)
        out_of_order = _out_of_order(options, self._is_async, max_concurrency)
        # The head keeps the constructor's arguments for restarts: every ref in them escapes.
        frames, top_refs, nested = pack_arguments(core, args, kwargs, promote=False)
        # The head starts (and restarts) the actor on a worker we never learn about, so we
        # cannot register it as a borrower: refs given to a constructor are kept for good.
        core.refs.mark_escaped([r._id for r in top_refs] + [oid for oid, _ in nested])
        events = core.task_events.enabled and options.get("enable_task_events", True)
        # An actor without task events records none for any of its calls, from any handle.
        methods = (
            self._methods
            if events
            else {k: dict(v, enable_task_events=False) for k, v in self._methods.items()}
        )
        handle_meta = cloudpickle.dumps(
            {
                "class_name": self._cls.__name__,
                "methods": methods,
                "max_task_retries": options.get("max_task_retries", 0),
                "generator_cap": _generator_cap(options),
                "max_restarts": options.get("max_restarts", 0),
                "max_pending_calls": options.get("max_pending_calls", -1),
                "out_of_order": out_of_order,
            }
        )
        spec = {
            "class_id": class_id,
            "class_name": self._cls.__name__,
            "name": name or "",
            "namespace": namespace,
            "lifetime": lifetime or "non_detached",
            "max_restarts": options.get("max_restarts", 0),
            "resources": placement,
            "run_resources": running,
            "max_concurrency": max_concurrency,
            "is_async": self._is_async,
            "owner_id": core.worker_id,
            # From @remote only: Ray ignores concurrency_groups given to .options().
            "concurrency_groups": concurrency_groups,
            "owner_address": core.address,
            "handle_meta": handle_meta,
            "strategy": strategy,
            "placement_group": group,
            "runtime_env": for_call(core, options.get("runtime_env")),
            "generator_backpressure": _generator_cap(options),
            "task_events": events,
        }
        if events:
            creation_task_id = b"\xff" * 8 + actor_id  # as the actor's worker names it
            core.task_events.submitted(
                creation_task_id,
                0,
                Shared(
                    (
                        TS.ACTOR_CREATION_TASK,
                        f"{self._cls.__name__}.__init__",
                        f"{self._cls.__name__}.__init__",
                        actor_id,
                        core.current_task_id(),
                        tuple(placement.items()),
                        group,
                        spec["runtime_env"],
                    )
                ),
            )
        reply, _ = core.requests.call(
            core.head_address,
            P.CreateActor(actor_id, spec, len(frames) - 1, []),
            config.rpc_timeout_s,
            payload=frames,
        )
        if isinstance(reply, P.Error):
            raise ValueError(reply.message)
        if events:
            core.task_events.state(creation_task_id, 0, TS.PENDING_NODE_ASSIGNMENT)
        # Counted here, not by the handle, so the handle count never reads 0 in between.
        max_pending_calls = options.get("max_pending_calls", -1)
        core.actor_submitter.track(
            actor_id,
            self._cls.__name__,
            owned=True,
            detached=lifetime == "detached",
            max_pending_calls=max_pending_calls,
            out_of_order=out_of_order,
        )
        return ActorHandle(
            actor_id,
            self._cls.__name__,
            methods,
            options.get("max_task_retries", 0),
            _generator_cap(options),
            options.get("max_restarts", 0),
            max_pending_calls,
            out_of_order,
            _counted=True,
        )


def _out_of_order(options, is_async: bool, max_concurrency: int) -> bool:
    """Ray's allow_out_of_order_execution: the default, and the only choice, for async and
    threaded actors (which cannot run calls in order); False by default for the others."""
    chosen = options.get("allow_out_of_order_execution")
    if chosen is None:
        return is_async or max_concurrency > 1
    if is_async and not chosen:
        raise ValueError(
            "If you're using async actors, Ray can't execute actor tasks in order. Set "
            "`allow_out_of_order_execution=True` to allow out-of-order execution."
        )
    if max_concurrency > 1 and not chosen:
        raise ValueError(
            "If you're using multi-threaded actors, Ray can't execute actor tasks in order. "
            "Set `allow_out_of_order_execution=True` to allow out-of-order execution."
        )
    return chosen


def _generator_cap(options) -> int:
    """The actor's cap on untaken values across its streams (-1: none)."""
    cap = options.get("_actor_generator_backpressure_num_objects")
    return -1 if cap is None else cap


def _actor_resources(options) -> tuple[dict, dict]:
    """(placement, while running), by Ray's rule: an actor that asks for nothing (or only
    memory) is placed with 1 CPU and runs with 0; one that asks for anything else holds what
    it asks for, with 1 CPU unless num_cpus says otherwise, for its whole life."""
    asked = O.resource_request(options, default_cpus=0)
    specified = set(asked) - {"CPU", "memory", "object_store_memory"}
    running = O.resource_request(options, default_cpus=1 if specified else 0)
    placement = dict(running)
    if options.get("num_cpus") is None:
        placement["CPU"] = max(placement.get("CPU", 0), 1.0)
    from zray._private.common import resources as R

    R.to_units(placement)
    return placement, running


def _method_table(cls) -> dict:
    table = {}
    for name, member in inspect.getmembers(cls):
        if not callable(member) or (name.startswith("__") and name != "__call__"):
            continue
        options = getattr(member, "__zray_method_options__", {})
        streams = inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)
        table[name] = {
            "num_returns": options.get("num_returns", "streaming" if streams else 1),
            "max_task_retries": options.get("max_task_retries"),
            "retry_exceptions": options.get("retry_exceptions"),
            "concurrency_group": options.get("concurrency_group"),
            "_generator_backpressure_num_objects": options.get(
                "_generator_backpressure_num_objects"
            ),
            "enable_task_events": options.get("enable_task_events", True),
        }
    return table


def _concurrency_groups(groups, methods: dict) -> dict:
    """{name: max concurrency} from @remote(concurrency_groups=...), checked: every group a
    method names must be defined (Ray asserts it when the actor is created)."""
    if groups is None:
        groups = {}
    if not isinstance(groups, dict):
        raise TypeError(
            "concurrency_groups must be a dict of group name to max concurrency, "
            f"got {type(groups).__name__}"
        )
    for name, size in groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"concurrency group names must be non-empty strings, got {name!r}")
        if type(size) is not int or size < 1:
            raise ValueError(
                f"The max concurrency of concurrency group {name!r} must be a "
                f"positive integer, got {size!r}"
            )
    for method_name, options in methods.items():
        group = options.get("concurrency_group")
        if group is not None and group not in groups:
            raise ValueError(
                f"Method {method_name!r} is in concurrency group {group!r}, which "
                f"the actor does not define (concurrency_groups={groups})."
            )
    return dict(groups)


def _lookup(core, name: str, namespace: str):
    from zray._config import config

    reply, _ = core.requests.call(
        core.head_address, P.GetNamedActor(name, namespace), config.rpc_timeout_s
    )
    if not reply.found:
        return None
    return handle_from_meta(reply.actor_id, reply.handle_meta)


def handle_from_meta(actor_id: bytes, handle_meta: bytes) -> "ActorHandle":
    """A handle built from what the actor's creator recorded for handles (its `handle_meta`)."""
    meta = cloudpickle.loads(handle_meta)
    return ActorHandle(
        actor_id,
        meta["class_name"],
        meta["methods"],
        meta["max_task_retries"],
        meta.get("generator_cap", -1),
        meta.get("max_restarts", 0),
        meta.get("max_pending_calls", -1),
        meta.get("out_of_order", False),
    )


class ActorHandle:
    """A handle to a running actor: attribute access gives its methods. Handles can be passed
    to tasks and other actors and keep working there."""

    def __init__(
        self,
        actor_id: bytes,
        class_name: str,
        methods: dict,
        max_task_retries: int,
        generator_cap: int = -1,
        max_restarts: int = 0,
        max_pending_calls: int = -1,
        out_of_order: bool = False,
        _counted: bool = False,
    ):
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._max_task_retries = max_task_retries
        # Callers acknowledge taken stream values only to a producer that may pause for them.
        self._generator_cap = generator_cap
        self._max_restarts = max_restarts  # whether lost call outputs can be recomputed
        self._max_pending_calls = max_pending_calls
        self._out_of_order = out_of_order
        core = runtime.require_connected()
        if not _counted:
            core.actor_submitter.track(
                actor_id,
                class_name,
                max_pending_calls=max_pending_calls,
                out_of_order=out_of_order,
            )
        self._core = core

    def __del__(self):
        core = runtime.core
        if core is not None and core is getattr(self, "_core", None):
            core.actor_submitter.handle_dropped(self._actor_id)

    def __getattr__(self, name):
        methods = self.__dict__.get("_methods", {})
        if name in methods or name in ("__ray_terminate__", "__ray_ready__"):
            plain = self.__dict__.get("_plain_methods")
            if plain is None:  # once per handle: the methods whose own options are defaults
                plain = self._plain_methods = frozenset(
                    n for n, defaults in methods.items() if plain_defaults(n, defaults)
                )
            return ActorMethod(
                self, name, methods.get(name, {"num_returns": 1}), None, name in plain
            )
        raise AttributeError(f"'{self._class_name}' object has no attribute '{name}'")

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __hash__(self):
        return hash(self._actor_id)

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    @property
    def _ray_actor_id(self):
        from zray._private.common.id_types import ActorID

        return ActorID(self._actor_id)

    def __reduce__(self):
        core = runtime.core
        if core is not None:
            core.actor_submitter.handle_escaped(self._actor_id)
        return _rebuild_handle, (
            self._actor_id,
            self._class_name,
            self._methods,
            self._max_task_retries,
            self._generator_cap,
            self._max_restarts,
            self._max_pending_calls,
            self._out_of_order,
        )


def _rebuild_handle(
    actor_id,
    class_name,
    methods,
    max_task_retries,
    generator_cap=-1,
    max_restarts=0,
    max_pending_calls=-1,
    out_of_order=False,
):
    return ActorHandle(
        actor_id,
        class_name,
        methods,
        max_task_retries,
        generator_cap,
        max_restarts,
        max_pending_calls,
        out_of_order,
    )


class ActorMethod:
    def __init__(
        self, handle: ActorHandle, name: str, defaults: dict, options=None, plain: bool = False
    ):
        self._handle = handle
        self._name = name
        self._defaults = defaults
        self._options = options or {}
        # Its calls may take the short path (zray/_private/core/plain_calls.py).
        self._plain = plain and not options

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running "
            f"'object.{self._name}()', try 'object.{self._name}.remote()'."
        )

    def options(self, **options):
        _check_method_options(options)
        return ActorMethod(self._handle, self._name, self._defaults, options)

    def remote(self, *args, **kwargs):
        if self._plain:
            if not args and not kwargs:
                ref = submit_plain(self._handle, self._name, NO_ARGUMENTS)
            elif is_plain((args, kwargs)):  # scalars only: no ref, no buffer
                ref = submit_plain(self._handle, self._name, serialize_plain((args, kwargs)))
            else:
                ref = None
            if ref is not None:
                return ref
        handle = self._handle
        core = handle._core
        num_returns = self._options.get("num_returns", self._defaults.get("num_returns", 1))
        streaming = num_returns in ("streaming", "dynamic")
        if not streaming and (
            not isinstance(num_returns, int) or not 0 <= num_returns <= P.MAX_NUM_RETURNS
        ):
            raise ValueError(f"num_returns={num_returns!r} is not supported for actor methods")
        retries = self._options.get("max_task_retries", self._defaults.get("max_task_retries"))
        if retries is None:
            retries = handle._max_task_retries
        retry_exceptions = self._options.get(
            "retry_exceptions", self._defaults.get("retry_exceptions")
        )
        if retry_exceptions is not None:  # checked only when given: this is every call's path
            retry_exceptions = _retry_exceptions(retry_exceptions)
        group = self._options.get("concurrency_group") or self._defaults.get("concurrency_group")
        if group is not None and not isinstance(group, str):
            raise TypeError(f"concurrency_group must be a string, got {type(group).__name__}")
        backpressure = self._options.get("_generator_backpressure_num_objects")
        if backpressure is None:
            backpressure = self._defaults.get("_generator_backpressure_num_objects")
        task_id = random_id(8) + handle._actor_id
        frames, top_refs, nested = pack_arguments(core, args, kwargs)
        events = core.task_events.enabled and self._options.get(
            "enable_task_events", self._defaults.get("enable_task_events", True)
        )
        if streaming or num_returns == 1:  # the common case, without a comprehension
            return_ids = [object_id_for(task_id, 1)]
        else:
            return_ids = [object_id_for(task_id, i) for i in range(1, num_returns + 1)]
        call = ActorCall(
            task_id,
            self._name,
            P.STREAMING if streaming else num_returns,
            return_ids,
            frames,
            top_refs,
            retries,
            nested,
            group or "",
            -1 if backpressure is None else backpressure,
            max_retries=retries if handle._max_restarts else 0,
            events=events,
            parent_task_id=core.current_task_id() if events else b"",
            retry_exceptions=retry_exceptions,
        )
        if handle._max_pending_calls > 0:
            core.actor_submitter.check_pending_calls(handle._actor_id, self._name)
        if len(return_ids) == 1:
            refs = [ObjectRef(return_ids[0], core.address)]
        else:
            refs = [ObjectRef(oid, core.address) for oid in return_ids]
        if streaming:  # values arrive as they are yielded (zray/_private/core/generators.py)
            from zray._private.core.generators import ObjectRefGenerator, dynamic_result

            acknowledged = backpressure if backpressure and backpressure > 0 else -1
            if handle._generator_cap > 0:
                acknowledged = handle._generator_cap
            result = ObjectRefGenerator(refs[0], core.streams.open(task_id, acknowledged), core)
            if num_returns == "dynamic":
                stream = result
                result, fulfil = core.promise()
                dynamic_result(core, stream, fulfil)
            core.actor_submitter.submit(handle._actor_id, call)
            return result
        core.actor_submitter.submit(handle._actor_id, call)
        if num_returns == 1:
            return refs[0]
        return refs
