"""Extract real Ray's public API surface into tests/data/ray_surface.json.

Run this with the *Ray* virtualenv's interpreter (see perf/setup_ray.sh), never
with the project's own environment -- Ray is not a zray dependency:

    RAYPY=$(bash perf/setup_ray.sh | tail -n1)
    $RAYPY perf/extract_ray_surface.py [--out tests/data/ray_surface.json]

The output records:
  * signatures of Ray Core's top-level API (``ray.init``, ``ray.get``, ...),
  * ``RuntimeContext`` methods/properties, ``ObjectRef`` / ``ObjectRefGenerator``
    public methods,
  * every exception class in ``ray.exceptions`` (bases, MRO, ``__init__``),
  * the ``.options()`` names and defaults for tasks and actors,
  * live behaviour from a 1-CPU local cluster: ``nodes()`` keys and a redacted
    example, resources, ObjectRef repr, RayTaskError formatting, and the exact
    errors for a set of bad inputs,
  * the flags of ``ray start`` / ``stop`` / ``status`` / ``memory``.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import json
import os
import re
import subprocess
import sys
import traceback
import types
from pathlib import Path

# A throwaway local cluster: no usage-stats reporting, no auth token.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402

EMPTY = inspect.Parameter.empty

TOP_LEVEL = [
    "init",
    "shutdown",
    "is_initialized",
    "remote",
    "get",
    "put",
    "wait",
    "cancel",
    "kill",
    "get_actor",
    "method",
    "nodes",
    "cluster_resources",
    "available_resources",
    "get_runtime_context",
    "get_gpu_ids",
    "timeline",
    "ObjectRef",
    "ObjectRefGenerator",
    "DynamicObjectRefGenerator",
    "actor",
    "exceptions",
    "util",
    "runtime_context",
    "LoggingConfig",
    "client",
    "java_function",
    "java_actor_class",
    "cross_language",
]

CLI_COMMANDS = ["start", "stop", "status", "memory"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _safe_repr(v, limit=300):
    try:
        r = repr(v)
    except Exception as e:  # pragma: no cover - defensive
        r = f"<unrepresentable {type(v).__name__}: {e}>"
    return r if len(r) <= limit else r[:limit] + "..."


def _signature(obj):
    """Signature of ``obj`` as a JSON-friendly dict (or an error record)."""
    target = obj
    try:
        target = inspect.unwrap(obj)
    except Exception:
        pass
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError) as e:
        text = getattr(obj, "__text_signature__", None)
        return {"error": f"{type(e).__name__}: {e}", "text_signature": text}
    params = []
    for p in sig.parameters.values():
        rec = {"name": p.name, "kind": p.kind.name}
        if p.default is not EMPTY:
            rec["default"] = _safe_repr(p.default)
        if p.annotation is not EMPTY:
            rec["annotation"] = (
                _safe_repr(p.annotation, 200) if not isinstance(p.annotation, str) else p.annotation
            )
        params.append(rec)
    out = {"parameters": params, "text": str(sig)}
    if sig.return_annotation is not EMPTY:
        ra = sig.return_annotation
        out["return_annotation"] = ra if isinstance(ra, str) else _safe_repr(ra, 200)
    return out


def _doc_first_line(obj):
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _public_members(cls):
    """Public attributes defined on ``cls`` (and its non-object bases)."""
    out = {}
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        try:
            raw = inspect.getattr_static(cls, name)
        except AttributeError:
            raw = getattr(cls, name, None)
        rec = {}
        if isinstance(raw, property):
            rec["kind"] = "property"
            rec["signature"] = _signature(raw.fget) if raw.fget else None
        elif isinstance(raw, staticmethod):
            rec["kind"] = "staticmethod"
            rec["signature"] = _signature(raw.__func__)
        elif isinstance(raw, classmethod):
            rec["kind"] = "classmethod"
            rec["signature"] = _signature(raw.__func__)
        elif type(raw).__name__ in ("getset_descriptor", "member_descriptor"):
            rec["kind"] = "property"  # Cython/C-level attribute
        elif callable(raw) or type(raw).__name__ in (
            "method_descriptor",
            "cython_function_or_method",
            "builtin_function_or_method",
            "classmethod_descriptor",
        ):
            kind = "method"
            if type(raw).__name__ == "classmethod_descriptor":
                kind = "classmethod"
            rec["kind"] = kind
            rec["signature"] = _signature(getattr(cls, name))
        else:
            rec["kind"] = "attribute"
            rec["value"] = _safe_repr(raw)
        rec["doc"] = _doc_first_line(getattr(cls, name, None)) if rec["kind"] != "attribute" else ""
        out[name] = rec
    return out


def _describe(name, obj):
    rec = {"name": name}
    if isinstance(obj, types.ModuleType):
        rec["type"] = "module"
        rec["module"] = obj.__name__
        public = getattr(obj, "__all__", None)
        rec["has___all__"] = public is not None
        if public is None:
            public = [n for n in dir(obj) if not n.startswith("_")]
        members = {}
        for n in public:
            try:
                m = getattr(obj, n)
            except Exception as e:
                members[n] = {"type": "error", "error": repr(e)}
                continue
            if isinstance(m, types.ModuleType):
                members[n] = {"type": "module", "module": m.__name__}
            elif inspect.isclass(m):
                members[n] = {
                    "type": "class",
                    "qualname": f"{m.__module__}.{m.__qualname__}",
                    "init_signature": _signature(m.__init__) if "__init__" in vars(m) else None,
                }
            elif callable(m):
                members[n] = {
                    "type": "function",
                    "signature": _signature(m),
                    "doc": _doc_first_line(m),
                }
            else:
                members[n] = {"type": "value", "repr": _safe_repr(m)}
        rec["members"] = members
    elif inspect.isclass(obj):
        rec["type"] = "class"
        rec["qualname"] = f"{obj.__module__}.{obj.__qualname__}"
        rec["mro"] = [c.__name__ for c in obj.__mro__]
        rec["init_signature"] = _signature(obj.__init__) if "__init__" in vars(obj) else None
        rec["methods"] = _public_members(obj)
        rec["doc"] = _doc_first_line(obj)
    elif callable(obj):
        rec["type"] = "function"
        rec["qualname"] = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', name)}"
        rec["signature"] = _signature(obj)
        rec["doc"] = _doc_first_line(obj)
    else:
        rec["type"] = "value"
        rec["repr"] = _safe_repr(obj)
    return rec


# --------------------------------------------------------------------------
# static sections
# --------------------------------------------------------------------------


def extract_api():
    out = {}
    for name in TOP_LEVEL:
        if not hasattr(ray, name):
            out[name] = {"name": name, "type": "missing"}
            continue
        out[name] = _describe(name, getattr(ray, name))
    # ray.actor module: the bits users touch.
    import ray.actor as ra

    out["actor"]["core_members"] = {
        n: _describe(n, getattr(ra, n))
        for n in ("ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method")
        if hasattr(ra, n)
    }
    out["_all_top_level_public_names"] = sorted(n for n in dir(ray) if not n.startswith("_"))
    return out


def extract_runtime_context():
    from ray.runtime_context import RuntimeContext

    return {
        "qualname": f"{RuntimeContext.__module__}.{RuntimeContext.__qualname__}",
        "init_signature": _signature(RuntimeContext.__init__),
        "members": _public_members(RuntimeContext),
        "properties": sorted(
            n
            for n in dir(RuntimeContext)
            if not n.startswith("_")
            and isinstance(inspect.getattr_static(RuntimeContext, n), property)
        ),
    }


def extract_exceptions():
    import ray.exceptions as rex

    classes = {}
    for name in sorted(dir(rex)):
        obj = getattr(rex, name)
        if not (inspect.isclass(obj) and issubclass(obj, BaseException)):
            continue
        defined_here = obj.__module__ == rex.__name__
        init_owner = next((c for c in obj.__mro__ if "__init__" in vars(c)), None)
        classes[name] = {
            "module": obj.__module__,
            "defined_in_ray_exceptions": defined_here,
            "bases": [b.__name__ for b in obj.__bases__],
            "mro": [c.__name__ for c in obj.__mro__],
            "mro_qualified": [f"{c.__module__}.{c.__qualname__}" for c in obj.__mro__],
            "init_defined_by": init_owner.__name__ if init_owner else None,
            "init_signature": _signature(obj.__init__),
            "overrides_str": "__str__" in vars(obj),
            "class_attributes": {
                k: _safe_repr(v)
                for k, v in vars(obj).items()
                if not k.startswith("_")
                and not callable(v)
                and not isinstance(v, (property, staticmethod, classmethod))
            },
            "public_methods": sorted(
                k
                for k, v in vars(obj).items()
                if not k.startswith("_")
                and (callable(v) or isinstance(v, (property, staticmethod, classmethod)))
            ),
            "doc": _doc_first_line(obj),
        }
    return {
        "classes": classes,
        "ray_exception_types_list": [c.__name__ for c in getattr(rex, "RAY_EXCEPTION_TYPES", [])],
        "note": "classes includes every BaseException subclass reachable as an attribute of "
        "ray.exceptions; defined_in_ray_exceptions=False marks re-exports.",
    }


def extract_object_ref():
    out = {}
    for cls in (ray.ObjectRef, ray.ObjectRefGenerator):
        out[cls.__name__] = {
            "mro": [c.__name__ for c in cls.__mro__],
            "public_members": _public_members(cls),
            "dunder_methods": sorted(
                n
                for n in dir(cls)
                if n.startswith("__")
                and n.endswith("__")
                and n
                in (
                    "__await__",
                    "__iter__",
                    "__next__",
                    "__aiter__",
                    "__anext__",
                    "__hash__",
                    "__eq__",
                    "__reduce__",
                    "__len__",
                    "__del__",
                    "__repr__",
                    "__str__",
                    "__bool__",
                )
            ),
        }
    return out


def _option_default(opt):
    d = opt.default_value
    if isinstance(d, enum.Enum):
        return repr(d)
    if isinstance(d, (int, float, str, bool, type(None))):
        return d
    return _safe_repr(d)


def _type_constraint_names(tc):
    if tc is None:
        return None
    if isinstance(tc, tuple):
        return [t.__name__ for t in tc]
    return [tc.__name__]


def extract_options():
    try:
        import ray._common.ray_option_utils as rou

        src = "ray/_common/ray_option_utils.py"
    except ImportError:  # older Ray layout
        import ray._private.ray_option_utils as rou

        src = "ray/_private/ray_option_utils.py"

    def dump(d):
        return {
            k: {
                "default": _option_default(v),
                "types": _type_constraint_names(v.type_constraint),
                "has_value_constraint": v.value_constraint is not None,
            }
            for k, v in d.items()
        }

    return {
        "source_module": src,
        "task_options": dump(rou.task_options),
        "actor_options": dump(rou.actor_options),
        "common_option_names": list(rou._common_options),
        "task_only_option_names": list(rou._task_only_options),
        "actor_only_option_names": list(rou._actor_only_options),
        "valid_options_order": list(rou.valid_options),
        "remote_args_error_string": rou.remote_args_error_string,
        "DEFAULT_TASK_MAX_RETRIES": ray._private.ray_constants.DEFAULT_TASK_MAX_RETRIES,
    }


def extract_cli():
    from ray.scripts.scripts import cli

    def norm_default(p):
        d = p.default
        if type(d).__name__ == "Sentinel" or repr(d).endswith("UNSET"):
            return "UNSET"
        if callable(d):
            return _safe_repr(d)
        if isinstance(d, (int, float, str, bool, type(None))):
            return d
        if isinstance(d, (list, tuple)):
            return list(d)
        return _safe_repr(d)

    ray_bin = Path(sys.executable).with_name("ray")
    out = {}
    for cmd in CLI_COMMANDS:
        c = cli.commands[cmd]
        params = []
        for p in c.params:
            rec = {
                "name": p.name,
                "param_type": p.param_type_name,  # option / argument
                "opts": list(p.opts),
                "secondary_opts": list(p.secondary_opts),
                "type": str(p.type),
                "default": norm_default(p),
                "required": p.required,
                "multiple": p.multiple,
            }
            if p.param_type_name == "option":
                rec["is_flag"] = p.is_flag
                rec["hidden"] = getattr(p, "hidden", False)
                if p.is_flag and rec["default"] == "UNSET":
                    rec["effective_default"] = False
                envvar = getattr(p, "envvar", None)
                if envvar:
                    rec["envvar"] = envvar
                rec["help"] = (p.help or "").strip()
            params.append(rec)
        help_text = None
        if ray_bin.exists():
            try:
                help_text = subprocess.run(
                    [str(ray_bin), cmd, "--help"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    env={**os.environ, "COLUMNS": "100"},
                ).stdout
            except Exception as e:
                help_text = f"<failed: {e}>"
        out[cmd] = {
            "doc": _doc_first_line(c.callback) if c.callback else "",
            "flags": [p["opts"][-1] for p in params if p["param_type"] == "option"],
            "params": params,
            "help_text": help_text,
        }
    return out


# --------------------------------------------------------------------------
# live behaviour
# --------------------------------------------------------------------------

_HEX_RE = re.compile(r"\b[0-9a-f]{16,}\b")


def _redact(v):
    """Replace long hex ids (node/worker/object ids) with a placeholder."""
    if isinstance(v, str):
        return _HEX_RE.sub(lambda m: f"<hex{len(m.group(0))}>", v)
    if isinstance(v, dict):
        return {_redact(k): _redact(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_redact(x) for x in v]
    return v


def _err(fn):
    """Run ``fn`` and record the exception it raises (or the value it returns)."""
    try:
        val = fn()
    except BaseException as e:  # noqa: BLE001 - we want everything
        return {
            "raised": True,
            "type": type(e).__name__,
            "qualname": f"{type(e).__module__}.{type(e).__qualname__}",
            "mro": [c.__name__ for c in type(e).__mro__],
            "str": _redact(str(e)),
            "repr": _redact(_safe_repr(e, 2000)),
            "args_repr": _redact(_safe_repr(e.args, 2000)),
        }
    return {"raised": False, "value_repr": _redact(_safe_repr(val))}


def _type_summary(v):
    if isinstance(v, dict):
        return {k: type(x).__name__ for k, x in v.items()}
    return type(v).__name__


def extract_live():
    live = {}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=True)
    try:
        nodes = ray.nodes()
        live["nodes_len"] = len(nodes)
        live["nodes_keys"] = list(nodes[0].keys())
        live["nodes_value_types"] = _type_summary(nodes[0])
        live["nodes_example_redacted"] = _redact(nodes[0])
        live["cluster_resources"] = ray.cluster_resources()
        live["available_resources"] = ray.available_resources()
        live["is_initialized"] = ray.is_initialized()

        ref = ray.put(1)
        live["object_ref_repr"] = _redact(repr(ref))
        live["object_ref_str"] = _redact(str(ref))
        live["object_ref_hex_len"] = len(ref.hex())
        live["object_ref_binary_len"] = len(ref.binary())

        @ray.remote
        def f():
            raise ValueError("boom")

        @ray.remote
        def ok(x=1):
            return x

        @ray.remote
        class A:
            def m(self):
                return 1

            def bad(self):
                raise KeyError("k")

        tref = ok.remote()
        live["task_object_ref_repr"] = _redact(repr(tref))
        ray.get(tref)

        try:
            ray.get(f.remote())
        except Exception as e:
            live["ray_task_error"] = {
                "type_name": type(e).__name__,
                "mro": [c.__name__ for c in type(e).__mro__],
                "isinstance_ValueError": isinstance(e, ValueError),
                "isinstance_RayTaskError": isinstance(e, ray.exceptions.RayTaskError),
                "str": _redact(str(e)),
                "repr": _redact(repr(e)),
                "args_repr": _redact(_safe_repr(e.args, 3000)),
                "cause_type": type(getattr(e, "cause", None)).__name__,
                "cause_repr": repr(getattr(e, "cause", None)),
                "function_name": getattr(e, "function_name", None),
                "proctitle": getattr(e, "proctitle", None),
                "traceback_str": _redact(getattr(e, "traceback_str", "")),
                "pid_type": type(getattr(e, "pid", None)).__name__,
                "ip": getattr(e, "ip", None),
            }
        # The raw (non-dual) RayTaskError as stored, before ray.get converts it
        # with as_instanceof_cause().
        try:
            fref = f.remote()
            ray.wait([fref])
            vals, _ = ray._private.worker.global_worker.get_objects([fref], return_exceptions=True)
            raw = vals[0]
            live["ray_task_error_raw"] = {
                "type_name": type(raw).__name__,
                "function_name": raw.function_name,
                "proctitle": raw.proctitle,
                "pid_type": type(raw.pid).__name__,
                "ip": raw.ip,
                "actor_repr": raw.actor_repr,
                "args_repr": _redact(_safe_repr(raw.args, 3000)),
                "traceback_str": _redact(raw.traceback_str),
                "str": _redact(str(raw)),
                "cause_repr": repr(raw.cause),
            }
        except Exception:
            live["ray_task_error_raw"] = {"extraction_error": traceback.format_exc()}
        # Formatting of a hand-built RayTaskError (deterministic inputs).
        tb = (
            "Traceback (most recent call last):\n"
            '  File "/x/y.py", line 3, in f\n'
            '    raise ValueError("boom")\n'
            "ValueError: boom"
        )
        built = ray.exceptions.RayTaskError(
            "f", tb, ValueError("boom"), proctitle="ray::f", pid=1234, ip="10.0.0.1"
        )
        dual = built.as_instanceof_cause()
        live["ray_task_error_constructed"] = {
            "call": "RayTaskError('f', tb, ValueError('boom'), proctitle='ray::f', pid=1234, ip='10.0.0.1')",
            "traceback_str": tb,
            "str": str(built),
            "repr": repr(built),
            "args_repr": _safe_repr(built.args),
            "dual_type": type(dual).__name__,
            "dual_str": str(dual),
            "dual_repr": repr(dual),
            "dual_args_repr": _safe_repr(dual.args),
            "dual_mro": [c.__name__ for c in type(dual).__mro__],
            "actor_variant_str": str(
                ray.exceptions.RayTaskError(
                    "m",
                    tb,
                    ValueError("boom"),
                    proctitle="ray::A.m",
                    pid=1234,
                    ip="10.0.0.1",
                    actor_repr="<A object>",
                    actor_id="abc",
                )
            ),
        }
        a = A.remote()
        live["actor_handle_repr"] = _redact(repr(a))
        live["actor_method_repr"] = _redact(repr(a.m))
        live["actor_class_repr"] = _redact(repr(A))
        live["remote_function_repr"] = _redact(repr(ok))
        live["actor_method_error"] = _err(lambda: ray.get(a.bad.remote()))
        ctx = ray.get_runtime_context()
        live["runtime_context_driver"] = {
            n: _err(getattr(ctx, n))
            for n in (
                "get_job_id",
                "get_node_id",
                "get_worker_id",
                "get_actor_id",
                "get_task_id",
                "get_assigned_resources",
                "get_accelerator_ids",
            )
        }
        live["runtime_context_driver"]["namespace"] = _err(lambda: ctx.namespace)

        @ray.remote
        def ctx_in_task():
            c = ray.get_runtime_context()
            return {
                n: _err(getattr(c, n))
                for n in (
                    "get_job_id",
                    "get_node_id",
                    "get_worker_id",
                    "get_actor_id",
                    "get_task_id",
                    "get_assigned_resources",
                    "get_accelerator_ids",
                    "get_task_name",
                    "get_task_function_name",
                )
            }

        live["runtime_context_in_task"] = ray.get(ctx_in_task.remote())

        @ray.remote
        def slow():
            import time

            time.sleep(5)

        bad = {}
        bad["unknown_task_option_in_options"] = _err(lambda: ok.options(foo=1))
        bad["unknown_actor_option_in_options"] = _err(lambda: A.options(foo=1))
        bad["unknown_option_in_decorator"] = _err(lambda: ray.remote(foo=1)(lambda: 1))
        bad["unknown_option_in_decorator_class"] = _err(
            lambda: ray.remote(foo=1)(type("B", (), {}))
        )
        bad["max_calls_in_options"] = _err(lambda: ok.options(max_calls=1))
        bad["bad_option_type"] = _err(lambda: ok.options(num_cpus="x"))
        bad["negative_num_cpus"] = _err(lambda: ok.options(num_cpus=-1))
        bad["remote_positional_args"] = _err(lambda: ray.remote(1, 2))
        bad["call_remote_function_directly"] = _err(lambda: ok())
        bad["instantiate_actor_class_directly"] = _err(lambda: A())
        bad["call_actor_method_directly"] = _err(lambda: a.m())
        bad["get_int"] = _err(lambda: ray.get(123))
        bad["get_list_with_int"] = _err(lambda: ray.get([ref, 123]))
        bad["get_timeout"] = _err(lambda: ray.get(slow.remote(), timeout=0.1))
        bad["get_timeout_zero"] = _err(lambda: ray.get(slow.remote(), timeout=0))
        bad["wait_non_list"] = _err(lambda: ray.wait(ref))
        bad["wait_num_returns_too_big"] = _err(lambda: ray.wait([ref], num_returns=2))
        bad["wait_duplicate_refs"] = _err(lambda: ray.wait([ref, ref], num_returns=1))
        bad["put_object_ref"] = _err(lambda: ray.put(ref))
        bad["get_actor_missing"] = _err(lambda: ray.get_actor("no_such_actor"))
        bad["kill_non_actor"] = _err(lambda: ray.kill(ref))
        bad["cancel_non_ref"] = _err(lambda: ray.cancel(123))
        bad["init_twice"] = _err(lambda: ray.init(num_cpus=1))
        bad["init_twice_ignore_reinit_error"] = _err(
            lambda: ray.init(num_cpus=1, ignore_reinit_error=True)
        )
        cref = slow.remote()
        ray.cancel(cref)
        bad["get_cancelled_task"] = _err(lambda: ray.get(cref))
        ray.kill(a)
        import time

        time.sleep(1)
        bad["call_killed_actor"] = _err(lambda: ray.get(a.m.remote()))
        live["bad_inputs"] = bad
    finally:
        ray.shutdown()
    live["after_shutdown_is_initialized"] = ray.is_initialized()
    return live


def main(argv=None):
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(here / "tests" / "data" / "ray_surface.json"))
    ap.add_argument("--no-live", action="store_true", help="skip starting a local Ray cluster")
    args = ap.parse_args(argv)

    data = {
        "ray_version": ray.__version__,
        "ray_commit": getattr(ray, "__commit__", None),
        "python_version": sys.version.split()[0],
        "generator": "perf/extract_ray_surface.py",
        "signature_format": "parameters: ordered [{name, kind, default(repr, absent if none), annotation}]",
    }
    sections = [
        ("api", extract_api),
        ("runtime_context", extract_runtime_context),
        ("object_ref", extract_object_ref),
        ("exceptions", extract_exceptions),
        ("options", extract_options),
        ("cli", extract_cli),
    ]
    if not args.no_live:
        sections.append(("live", extract_live))
    for key, fn in sections:
        try:
            data[key] = fn()
        except Exception:
            data[key] = {"extraction_error": traceback.format_exc()}
            print(f"[extract_ray_surface] section {key} failed", file=sys.stderr)
            traceback.print_exc()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=False, default=_safe_repr) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
