"""Pickling remote function and actor class definitions so that their tracebacks still show
source lines.

cloudpickle 3.1.3 and later rename every code object it pickles by value to "<dynamic-code>"
(to make payloads deterministic), so a task's remote traceback lost its file name and source
line. The definition travels with the file it came from and that file's lines; the loading
side puts the name back and, where the file is not on its machine, serves the lines from
linecache.
"""

from __future__ import annotations

import inspect
import linecache
import os
import types

import cloudpickle

DYNAMIC = "<dynamic-code>"


def dumps(definition) -> bytes:
    filename = _source_file(definition)
    lines = linecache.getlines(filename) if filename else []
    return cloudpickle.dumps((definition, filename, lines))


def loads(pickled: bytes):
    definition, filename, lines = cloudpickle.loads(pickled)
    if filename:
        for function in _functions(definition):
            function.__code__ = _renamed(function.__code__, filename)
        if lines and not os.path.exists(filename):
            linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return definition


def _source_file(definition):
    for function in _functions(definition):
        return function.__code__.co_filename
    return None


def _functions(definition) -> list:
    if isinstance(definition, types.FunctionType):
        return [definition]
    if not inspect.isclass(definition):
        return []
    found = []
    for value in vars(definition).values():
        value = getattr(value, "__func__", value)  # staticmethod, classmethod
        if isinstance(value, property):
            found += [f for f in (value.fget, value.fset, value.fdel) if f is not None]
        elif isinstance(value, types.FunctionType):
            found.append(value)
    return found


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    if code.co_filename != DYNAMIC:
        return code  # pickled by reference, or an older cloudpickle: already right
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)
