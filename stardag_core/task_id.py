"""The task id: one pure function from a task's canonical payload to a UUID.

The scheme is shared with the original stardag so that outputs written by either are found
by both: UUID5, in a fixed namespace, over compact, key-sorted JSON of
``{"__namespace": ..., "__name": ..., "version": ..., <parameters in JSON mode>}``, where a
task nested as a parameter contributes ``{"id": "<its id>"}``. Never change this module's
output for an existing payload: golden tests pin it.
"""

import hashlib
import json
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any
from uuid import UUID, SafeUUID

TASK_ID_NAMESPACE = UUID("9ca26b27-f7ee-4044-8b3c-e335dc5778dc")

_NAMESPACE_BYTES = TASK_ID_NAMESPACE.bytes
# RFC 4122 version 5: clear the version and variant bits, then set version 5, variant 10.
_CLEARED = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5 = (5 << 76) | (0x8000 << 48)
_UNKNOWN_SAFETY = SafeUUID.unknown  # an enum member's lookup costs as much as a setattr


_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def canonical_json(payload: Mapping[str, Any]) -> str:
    """The canonical text of a payload: compact separators, keys sorted at every level."""
    return _CANONICAL.encode(payload)


def canonical_json_value(value: Any) -> str:
    """The canonical text of any JSON-mode value, as it appears inside a payload's text."""
    return _CANONICAL.encode(value)


canonical_json_str: Callable[[str], str] = encode_basestring_ascii
"""The canonical text of a string (``canonical_json_value`` for a ``str``, faster)."""


def task_id(payload: Mapping[str, Any]) -> UUID:
    """The task id of a canonical (JSON-mode) payload: ``uuid5(TASK_ID_NAMESPACE, json)``."""
    return task_id_of_json(canonical_json(payload))


def task_id_of_json(canonical: str) -> UUID:
    """The task id of a payload's canonical JSON text (see ``canonical_json``)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + canonical.encode()).digest()
    value = (int.from_bytes(digest[:16], "big") & _CLEARED) | _VERSION_5
    # uuid.uuid5 computes the same value; building the UUID directly skips its checks,
    # which cost as much as the hashing (ids are computed for every task of a build).
    identifier = object.__new__(UUID)
    object.__setattr__(identifier, "int", value)
    object.__setattr__(identifier, "is_safe", _UNKNOWN_SAFETY)
    return identifier


def sorted_set_items(items: list[Any]) -> list[Any]:
    """A JSON-mode set's items in canonical order: by value, or by their JSON when mixed."""
    try:
        return sorted(items)
    except TypeError:
        return sorted(
            items,
            key=lambda item: json.dumps(
                item, separators=(",", ":"), sort_keys=True, ensure_ascii=False
            ),
        )
