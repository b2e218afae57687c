"""docs/protocol.md and zray/_private/wire/protocol.py describe the same messages."""

import os
import re

from zray._private.wire import codec
from zray._private.wire import protocol as P

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "protocol.md")


def documented() -> dict:
    rows = {}
    for line in open(DOC):
        match = re.match(r"\| (\d+) \| `(\w+)` \| ([^|]*) \|", line)
        if match:
            rows[int(match.group(1))] = (match.group(2), match.group(3).strip())
    return rows


def test_every_message_type_is_documented_with_its_fields():
    rows = documented()
    for code, cls in P.message_types().items():
        assert code in rows, f"{cls.__name__} (code {code}) missing from docs/protocol.md"
        name, fields = rows[code]
        assert name == cls.__name__
        expected = ", ".join(
            f"{field}: {codec._annotation_text(cls.__annotations__[field])}"
            for field in cls._fields
        )
        assert fields == expected, cls.__name__


def test_no_documented_message_is_missing_from_the_code():
    assert set(documented()) == set(P.message_types())
