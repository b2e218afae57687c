"""A fork server for worker processes.

Importing numpy, cloudpickle and zmq costs a fresh interpreter a few hundred milliseconds; the
zygote pays it once and forks each worker from a warm image in a few milliseconds. It holds no
ZeroMQ context and starts no threads, so forking it is safe.

Protocol on its stdin/stdout, one line each:  ``spawn <worker_id hex> [<context hex>]`` in
(the context: a runtime env's env_vars, cwd, sys.path and python, see runtime_env_agent.py);
``started <worker_id hex> <pid>`` and ``exited <pid> <status>`` out.
The zygote and every worker die with their parent (PR_SET_PDEATHSIG), so a killed daemon leaves
no orphans behind.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys

from zray._private.common.launch import set_parent_death_signal


def main():
    set_parent_death_signal()
    args = sys.argv[1:]
    # Warm the image: everything a worker imports.
    import zray._private.worker.worker_main as worker_main  # noqa: F401
    import numpy  # noqa: F401

    # Moves the warm image out of the collector's reach: a worker's collections would
    # otherwise touch (and so copy) every page of it that holds a tracked object.
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.fileno()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    pending = b""
    children: set[int] = set()
    while True:
        try:
            readable, _, _ = select.select([stdin, wake_r], [], [], 1.0)
        except InterruptedError:
            readable = []
        if wake_r in readable:
            os.read(wake_r, 4096)
        children.difference_update(_reap(out))
        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                break  # the daemon is gone: so are its workers
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                parts = line.decode().split()
                if len(parts) in (2, 3) and parts[0] == "spawn":
                    pid = os.fork()
                    if pid == 0:
                        os.close(wake_r)
                        os.close(wake_w)
                        signal.set_wakeup_fd(-1)
                        _run_worker(parts[1], args, parts[2] if len(parts) == 3 else "")
                    children.add(pid)
                    out.write(f"started {parts[1]} {pid}\n")
                    out.flush()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in children:  # reap, so no zombie outlives the session
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    os._exit(0)


def _reap(out) -> list:
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)
        code = os.waitstatus_to_exitcode(status)
        try:
            out.write(f"exited {pid} {code}\n")
            out.flush()
        except BrokenPipeError:
            pass


def _run_worker(worker_id_hex: str, args: list, context_hex: str = ""):
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        set_parent_death_signal()
        os.dup2(2, 1)  # fd 1 is the zygote's protocol pipe: nothing of the worker may reach it
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        runtime_env = ""
        if context_hex:
            context = json.loads(bytes.fromhex(context_hex))
            if context.get("python"):
                # A pip env's virtualenv needs its own interpreter: exec it (same pid, still
                # the zygote's child, so its exit is reported as any other worker's).
                from zray._private.common.launch import module_command

                os.environ[CONTEXT_VARIABLE] = context_hex
                command = [context["python"]] + module_command("zray._private.worker.zygote")[1:]
                os.execv(command[0], command + [EXEC_WORKER, worker_id_hex] + args)
            runtime_env = apply_context(context)
        from zray._private.worker import worker_main

        code = worker_main.main(bytes.fromhex(worker_id_hex), args, runtime_env)
    except BaseException:  # the worker must never fall back into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code or 0)


CONTEXT_VARIABLE = "ZRAY_WORKER_CONTEXT"
EXEC_WORKER = "--exec-worker"


def apply_context(context: dict) -> str:
    """Makes this process the runtime env's worker: its env_vars, its working_dir as cwd and
    sys.path[0] (py_modules after it). Returns the env's canonical string."""
    import importlib

    os.environ.update(context.get("env_vars") or {})
    if context.get("cwd"):
        os.chdir(context["cwd"])
    sys.path[0:0] = context.get("sys_path") or []
    importlib.invalidate_caches()
    return context.get("runtime_env", "")


def _exec_worker(worker_id_hex: str, args: list):
    """A pip env's worker, exec'd under the virtualenv's python by a forked zygote child."""
    code = 1
    try:
        context_hex = os.environ.pop(CONTEXT_VARIABLE)
        runtime_env = apply_context(json.loads(bytes.fromhex(context_hex)))
        from zray._private.worker import worker_main

        code = worker_main.main(bytes.fromhex(worker_id_hex), args, runtime_env)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code or 0)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == EXEC_WORKER:
        _exec_worker(sys.argv[2], sys.argv[3:])
    main()
