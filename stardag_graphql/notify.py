"""Wake-ups for live subscriptions when a workspace's data changes.

Mutations call `changed(workspace_id)` after they commit; a subscription waits for its
workspace to change, or for `timeout` to pass (writes by another server process reach it
that way, by polling).
"""

import asyncio
import uuid
from collections import defaultdict


class Notifier:
    """In-process change signals, one per workspace."""

    def __init__(self) -> None:
        self._waiters: defaultdict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)

    def changed(self, workspace_id: uuid.UUID) -> None:
        """Wake everyone waiting on `workspace_id`."""
        for waiter in self._waiters.pop(workspace_id, ()):
            waiter.set()

    async def wait(self, workspace_id: uuid.UUID, timeout: float) -> None:
        """Return when `workspace_id` changes, or after `timeout` seconds."""
        waiter = asyncio.Event()
        self._waiters[workspace_id].add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(workspace_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[workspace_id]
