"""Task families: the (namespace, name) of each task class, and module namespaces.

A family names a task class in stored JSON (the ``__namespace`` and ``__name`` keys), so a
task read back from a file or the registry finds its class again.
"""

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stardag_core.tasks import Task

logger = logging.getLogger(__name__)

_module_namespaces: dict[str, str] = {}
_families: dict[tuple[str, str], type["Task"]] = {}


def namespace(name: str, scope: str | None = None) -> None:
    """Set the task namespace of a module and its submodules (default: the calling module).

    Call it before the module's task classes are defined::

        sd.namespace("ml")

        class Train(sd.AutoTask[float]): ...   # family "ml" / "Train"
    """
    if scope is None:
        scope = sys._getframe(1).f_globals["__name__"]
    _module_namespaces[scope] = name


def namespace_of_module(module: str) -> str:
    """The namespace set for ``module``, or for the nearest package above it; "" if none."""
    while True:
        if module in _module_namespaces:
            return _module_namespaces[module]
        if "." not in module:
            return ""
        module = module.rsplit(".", 1)[0]


def register(cls: type["Task"]) -> None:
    """Record ``cls`` as the class of its family; a later class of the same family wins."""
    key = (cls.get_namespace(), cls.get_name())
    previous = _families.get(key)
    if previous is not None and _where(previous) != _where(cls):
        logger.warning(
            "task family %r is now defined by %s (was %s); stored tasks of this family load "
            "as the new class",
            _family_label(*key),
            _where(cls),
            _where(previous),
        )
    _families[key] = cls


def lookup(namespace: str, name: str) -> type["Task"]:
    """The class registered for a family; ``KeyError`` with a fix when none is."""
    try:
        return _families[(namespace, name)]
    except KeyError:
        raise KeyError(
            f"unknown task family {_family_label(namespace, name)!r}: import the module that "
            "defines it before loading the task"
        ) from None


def _family_label(namespace: str, name: str) -> str:
    return f"{namespace}.{name}" if namespace else name


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
