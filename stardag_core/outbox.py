"""A durable queue of what a build reports to the registry: a small SQLite file.

Messages are appended as the build goes and removed only once the registry confirmed them,
so a registry that is down or slow loses nothing: whatever is left is sent by the next
sender on the same file, this run or a later one. Each message keeps the ids it was given
when it was queued (event ids, build keys), so sending it twice changes nothing.

Appending costs the build almost nothing: a message waits in memory until the sender next
looks at the queue (within milliseconds), and then every waiting message is written in one
transaction, before any of them is sent. The file is a WAL database with normal
synchronisation: what was written survives the process being killed.
"""

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Message:
    """One queued report: its place in the queue, its kind and its JSON payload."""

    seq: int
    kind: str
    payload: dict[str, Any]


class Outbox:
    """Messages in order, in the SQLite file `path` (created with its folder)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # `_memory` guards what waits in memory, `_file` the database: queuing a message
        # never waits for the file.
        self._memory = threading.Lock()
        self._file = threading.Lock()
        self._waiting: list[tuple[int, str, dict[str, Any]]] = []
        self._tickets = 0
        self._unsent: set[int] = set()
        self._written: dict[int, tuple[int, dict[str, Any]]] = {}  # seq -> ticket, payload
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox "
            "(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL)"
        )

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    def put(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue a message (which must not change afterwards); returns a ticket for
        `delivered`."""
        with self._memory:
            self._tickets += 1
            self._waiting.append((self._tickets, kind, payload))
            self._unsent.add(self._tickets)
            return self._tickets

    def delivered(self, ticket: int) -> bool:
        """Whether the message `put` gave `ticket` was removed (the registry confirmed it)."""
        with self._memory:
            return ticket not in self._unsent

    def peek(self, limit: int) -> list[Message]:
        """The oldest `limit` messages, still queued."""
        with self._file:
            self._write_waiting()
            rows = self._db.execute(
                "SELECT seq, kind, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        with self._memory:
            known = {seq: self._written[seq][1] for seq, _, _ in rows if seq in self._written}
        return [
            Message(seq, kind, known[seq] if seq in known else json.loads(payload))
            for seq, kind, payload in rows
        ]

    def remove(self, messages: Iterable[Message]) -> None:
        """Forget messages the registry has confirmed."""
        seqs = [message.seq for message in messages]
        # One transaction (the connection commits it, or rolls it back on an error): in
        # autocommit each DELETE would commit on its own.
        with self._file, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs])
        with self._memory:
            for seq in seqs:
                ticket, _ = self._written.pop(seq, (0, None))
                self._unsent.discard(ticket)

    def __len__(self) -> int:
        with self._file:
            (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
            with self._memory:
                return int(count) + len(self._waiting)

    def close(self) -> None:
        """Write what waits in memory and close the file; queued messages stay in it."""
        with self._file:
            self._write_waiting()
            self._db.close()

    def _write_waiting(self) -> None:
        """Write the messages waiting in memory, in one transaction (`_file` is held)."""
        with self._memory:
            waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        rows = [(kind, json.dumps(payload, separators=(",", ":"))) for _, kind, payload in waiting]
        try:
            with self._db:  # commits, or rolls back on an error
                self._db.execute("BEGIN")
                seqs = [
                    int(
                        self._db.execute(
                            "INSERT INTO outbox (kind, payload) VALUES (?, ?)", row
                        ).lastrowid
                        or 0
                    )
                    for row in rows
                ]
        except BaseException:
            with self._memory:  # not written: they wait in memory again, first in line
                self._waiting[:0] = waiting
            raise
        with self._memory:
            for seq, (ticket, _, payload) in zip(seqs, waiting, strict=True):
                self._written[seq] = (ticket, payload)
