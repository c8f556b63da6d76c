"""Registry assets: small documents a task publishes next to its output, for people to read.

A task returns them from ``registry_assets()``, which the build calls once the task has
completed; a registry stores them with the task (a markdown report, a JSON object of
metrics) and the GUI shows them. They should be derived from the task's output, loaded
from its target, rather than from state the run left in memory.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MarkdownRegistryAsset:
    """A markdown document, shown rendered."""

    name: str
    body: str


@dataclass(frozen=True)
class JSONRegistryAsset:
    """A JSON object (metrics, a summary), shown as data."""

    name: str
    body: dict[str, Any]


RegistryAsset = MarkdownRegistryAsset | JSONRegistryAsset
"""Any asset a task can publish."""
