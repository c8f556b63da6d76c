"""Per-parameter options that change how a parameter takes part in the task id."""

from dataclasses import dataclass
from typing import Any, Final


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True)
class Param:
    """Marks a task parameter, attached with ``Annotated[T, sd.Param(...)]``.

    ``hash_exclude=True`` leaves the parameter out of the task id: use it for values that
    change how the work is done but never what it produces (a thread count, a log level).

    ``compat_default=value`` lets a parameter be added to an existing task without changing
    any existing id: while the parameter equals ``value`` it is left out of the id, and
    stored tasks that predate it load with ``value``. Give it in the parameter's validated
    Python form (``(1, 2)`` for a ``tuple[int, ...]``).
    """

    hash_exclude: bool = False
    compat_default: Any = UNSET

    def __post_init__(self) -> None:
        if self.hash_exclude and self.compat_default is not UNSET:
            raise ValueError(
                "Param(hash_exclude=True) already keeps the parameter out of the task id; "
                "drop compat_default"
            )
