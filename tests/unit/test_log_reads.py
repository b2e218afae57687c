"""Reading a node's log files as `get_log` does (zray/util/state/logs.py): a whole file and a
tail of lines are several bounded `ReadLog` answers of the node's log_files.py."""

import os

import pytest

from zray._private.node import log_files
from zray._private.wire import protocol as P
from zray.util.state import logs


@pytest.fixture
def session(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "logs")

    def read_chunk(conn, node, filename, offset, timeout):
        found = log_files.read(str(tmp_path), filename, offset, logs.CHUNK_BYTES)
        assert found is not None
        return P.LogChunk(
            filename, found["data"], found["offset"], found["size"], found["truncated"]
        )

    monkeypatch.setattr(logs, "_read_chunk", read_chunk)
    return tmp_path


def write(session, name: str, text: str) -> str:
    with open(session / "logs" / name, "w") as f:
        f.write(text)
    return name


def get(name: str, tail: int) -> str:
    return "".join(logs._read(None, None, name, False, tail, 1, "utf-8", "strict", None, False))


def test_a_file_larger_than_one_answer_is_read_whole(session):
    text = "".join(f"line {i} " + "x" * 90 + "\n" for i in range(10_000))  # ~1 MiB
    assert len(text) > 3 * logs.CHUNK_BYTES
    assert get(write(session, "big.out", text), -1) == text


@pytest.mark.parametrize("lines", [0, 1, 2, 700, 5_000])
def test_the_last_lines_of_files_past_the_first_answer(session, lines):
    rows = [f"row {i} " + "y" * (i % 200) for i in range(12_000)]  # ~1.2 MiB
    name = write(session, "rows.out", "\n".join(rows) + "\n")
    expected = "".join(row + "\n" for row in rows[len(rows) - lines :]) if lines else ""
    assert get(name, lines) == expected


def test_a_tail_without_a_final_newline_and_of_a_small_file(session):
    assert get(write(session, "a.out", "one\ntwo\nthree"), 2) == "two\nthree"
    assert get(write(session, "b.out", "one\ntwo\n"), 5) == "one\ntwo\n"


def test_a_last_line_longer_than_the_search_is_cut_to_its_end(session):
    huge = "z" * (logs.MAX_TAIL_BYTES + 300_000)
    got = get(write(session, "huge.out", "start\n" + huge + "\n"), 1)
    assert huge.endswith(got.rstrip("\n")) and logs.MAX_TAIL_BYTES <= len(got) < len(huge)
