"""The outbox: a build's reports wait in a SQLite file until the registry confirmed them."""

import sqlite3
from pathlib import Path

import pytest

from stardag_core.outbox import Outbox


def test_messages_wait_in_order_until_removed_and_outlive_the_process(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path)
    tickets = [outbox.put("event", {"n": n}) for n in range(5)]

    first_two = outbox.peek(2)
    outbox.remove(first_two)
    outbox.close()

    assert [m.payload for m in first_two] == [{"n": 0}, {"n": 1}]
    assert [outbox.delivered(t) for t in tickets] == [True, True, False, False, False]
    reopened = Outbox(path)
    assert [(m.kind, m.payload) for m in reopened.peek(10)] == [
        ("event", {"n": n}) for n in (2, 3, 4)
    ]
    assert len(reopened) == 3


def test_a_write_that_fails_keeps_the_messages_for_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path)
    outbox.put("event", {"n": 0})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the file: writes time out

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        outbox.peek(10)
    outbox.put("event", {"n": 1})
    other.execute("ROLLBACK")

    assert [m.payload for m in outbox.peek(10)] == [{"n": 0}, {"n": 1}]
    assert len(outbox) == 2
