"""Remote definitions keep their file name and source lines through by-value pickling."""

from __future__ import annotations

import linecache
import traceback

from zray._private.common import definitions


def _fails():
    def boom():
        raise ValueError("boom happened")

    return boom


class _Actor:
    def method(self):
        return [x for x in (1,)]  # a nested code object (the comprehension)

    @staticmethod
    def static():
        raise KeyError("s")


def _traceback_text(function) -> str:
    try:
        function()
    except Exception as exc:  # noqa: BLE001 - its traceback is what we look at
        return "".join(traceback.format_exception(exc))
    raise AssertionError("did not raise")


def test_a_local_function_keeps_file_and_source_line():
    loaded = definitions.loads(definitions.dumps(_fails()))
    assert loaded.__code__.co_filename == __file__
    text = _traceback_text(loaded)
    assert __file__ in text and 'raise ValueError("boom happened")' in text


def test_a_class_keeps_file_names_of_methods_and_nested_code():
    cls = type("Local", (_Actor,), {"m2": lambda self: 1, "s2": staticmethod(_fails())})
    loaded = definitions.loads(definitions.dumps(cls))
    assert loaded.__dict__["m2"].__code__.co_filename == __file__
    assert loaded.__dict__["s2"].__func__.__code__.co_filename == __file__
    assert "raise ValueError" in _traceback_text(loaded.s2)


def test_lines_are_served_where_the_file_does_not_exist(monkeypatch):
    pickled = definitions.dumps(_fails())
    real_exists = definitions.os.path.exists
    monkeypatch.setattr(
        definitions.os.path, "exists", lambda p: False if p == __file__ else real_exists(p)
    )
    linecache.clearcache()
    loaded = definitions.loads(pickled)
    assert linecache.cache[__file__][1] is None  # not re-read from disk by checkcache
    assert 'raise ValueError("boom happened")' in _traceback_text(loaded)
    linecache.clearcache()
