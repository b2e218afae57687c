"""RemoteFunction: what `@zray.remote` makes of a function."""

from __future__ import annotations

import functools
import inspect


from zray._fast import object_id_for, random_id
from zray._private.common import definitions
from zray._private.wire import protocol as P
from zray._private.core.generators import ObjectRefGenerator, dynamic_result
from zray._private.core import options as O
from zray._private.common import resources as R
from zray._private.core import runtime
from zray._private.common.packaging import for_call
from zray._private.core.function_manager import function_id_of
from zray._private.core.arguments import pack_arguments
from zray._private.core.task_submitter import TaskSpec
from zray.util.placement_group import in_group, placement_of
from zray.object_ref import ObjectRef


class RemoteFunction:
    def __init__(self, function, options: dict):
        O.validate(options, O.TASK_OPTIONS, "remote functions", in_options_call=False)
        self._function = function
        self._default_options = options
        self._is_generator = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(
            function
        )
        self._pickled = None
        self._function_id = None
        self._shape_cache = {}
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        name = f"{self._function.__module__}.{self._function.__qualname__}"
        raise TypeError(
            "Remote functions cannot be called directly. Instead of running "
            f"'{name}()', try '{name}.remote()'."
        )

    def options(self, **options):
        O.validate(options, O.TASK_OPTIONS, "remote functions", in_options_call=True)
        merged = dict(self._default_options, **options)
        outer = self

        class _Bound:
            def remote(self, *args, **kwargs):
                return outer._remote(args, kwargs, merged)

            def bind(self, *args, **kwargs):
                raise NotImplementedError("zray does not support DAG bind() yet")

        return _Bound()

    def remote(self, *args, **kwargs):
        return self._remote(args, kwargs, self._default_options)

    def bind(self, *args, **kwargs):
        raise NotImplementedError("zray does not support DAG bind() yet")

    def __reduce__(self):
        return RemoteFunction, (self._function, self._default_options)

    # ------------------------------------------------------------------ submission

    def _export(self, core) -> bytes:
        if self._function_id is None:
            self._pickled = definitions.dumps(self._function)
            self._function_id = function_id_of(self._pickled)
            core.functions.remember(self._function_id, self._function)
        core.functions.export(self._function_id, self._pickled)
        return self._function_id

    def _remote(self, args, kwargs, options):
        if runtime.client is not None:
            return runtime.client.submit_task(self, args, kwargs, options)
        core = runtime.require_connected()
        function_id = self._export(core)
        num_returns = options.get("num_returns")
        if num_returns is None:  # Ray 2.8+: a generator function streams by default
            num_returns = "streaming" if self._is_generator else 1
        streaming = num_returns in ("streaming", "dynamic")
        shape = self._shape(core, options)
        group = ""
        placement = placement_of(core, options, shape[0], {}, self._function.__name__)
        if placement is not None:
            request, strategy, group = in_group(shape[0], placement)
            key = R.shape_key(R.to_units(request)) + (strategy,)
            shape = (request, key + (shape[3],) if shape[3] else key, strategy, shape[3])
        parent_task_id = core.current_task_id()
        task_id = random_id(8) + parent_task_id[8:]
        frames, top_refs, nested = pack_arguments(core, args, kwargs)
        # A stream's one fixed return is its completion; its values come as they are yielded.
        if streaming or num_returns == 1:  # a tuple: the queued task keeps it (TaskSpec)
            return_ids: tuple = (object_id_for(task_id, 1),)
        else:
            return_ids = tuple(object_id_for(task_id, i) for i in range(1, num_returns + 1))
        max_retries = options.get("max_retries")
        backpressure = options.get("_generator_backpressure_num_objects") or -1
        spec = TaskSpec(
            task_id=task_id,
            function_id=function_id,
            name=options.get("name") or self._function.__name__,
            num_returns=P.STREAMING if streaming else num_returns,
            return_ids=return_ids,
            frames=frames,
            top_refs=top_refs,
            nested=nested,
            resources=shape[0],
            key=shape[1],
            max_retries=3 if max_retries is None else max_retries,
            retry_exceptions=options.get("retry_exceptions", False),
            strategy=shape[2],
            placement_group=group,
            generator_backpressure=backpressure,
            runtime_env=shape[3],
            func_name=self._function.__name__,
            parent_task_id=parent_task_id,
            events=core.task_events.enabled and options.get("enable_task_events", True),
        )
        refs = [ObjectRef(oid, core.address) for oid in return_ids]
        if streaming:
            stream = ObjectRefGenerator(refs[0], core.streams.open(task_id, backpressure), core)
            result = stream
            if num_returns == "dynamic":
                result, fulfil = core.promise()
                dynamic_result(core, stream, fulfil)
            core.submitter.submit(spec)
            return result
        core.submitter.submit(spec)
        if num_returns == 1:
            return refs[0]
        return refs

    def _shape(self, core, options):
        """(resources, queue key, strategy, runtime env string), computed once per options
        dict and process (a runtime env's packing and upload too)."""
        cache_key = id(options)
        cached = self._shape_cache.get(cache_key)
        if cached is not None and cached[0] is options and cached[1] is core:
            return cached[2]
        from zray.util.scheduling_strategies import encode

        request = O.resource_request(options, default_cpus=1)
        R.to_units(request)  # validates amounts (e.g. 1.5 CPUs) before anything is sent
        strategy = encode(options.get("scheduling_strategy"))
        env = for_call(core, options.get("runtime_env"))
        shape = (request, R.shape_key(R.to_units(request)) + (strategy,), strategy, env)
        if env:  # tasks of another env need leases (workers) of their own
            shape = (request, shape[1] + (env,), strategy, env)
        self._shape_cache[cache_key] = (options, core, shape)
        return shape
