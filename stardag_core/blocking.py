"""Running a coroutine to completion from blocking code, even inside a running event loop."""

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` returns and return its result.

    Outside an event loop this is ``asyncio.run``. Inside one (a notebook, an async app) the
    coroutine runs on a new loop in a helper thread, with the caller's context variables.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    context = contextvars.copy_context()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            outcome.append(context.run(asyncio.run, make()))
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=worker, name="stardag-blocking")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
