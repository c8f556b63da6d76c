"""Task classes in a namespaced module, mirrored from the original stardag's golden cases."""

import datetime
from typing import Annotated

import stardag_core as sd

sd.namespace("examples.ml")


class Train(sd.AutoTask[float], version="2"):
    learning_rate: float
    layers: list[int]
    tags: set[str]

    def run(self) -> None:
        self.output().save(self.learning_rate * sum(self.layers))


class Mixed(sd.AutoTask[int]):
    text: str
    when: datetime.date
    options: dict[str, int | None]
    threads: Annotated[int, sd.Param(hash_exclude=True)] = 4
    added: Annotated[str, sd.Param(compat_default="legacy")] = "legacy"

    def run(self) -> None:
        self.output().save(len(self.text))


@sd.task
def combine(first: sd.Depends[float], second: sd.Depends[float], weight: float = 0.5) -> float:
    return (first + second) * weight
