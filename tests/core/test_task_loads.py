"""TaskLoads[T]: task parameters checked by what their output loads as."""

from typing import Any

import pytest
from pydantic import ValidationError

import stardag_core as sd

# Its own namespace: the README's examples, run in the same process, define a `Numbers` too.
sd.namespace("tests.task_loads")


class Numbers(sd.AutoTask[list[int]]):
    n: int

    def run(self) -> None:
        self.output().save(list(range(self.n)))


class Words(sd.AutoTask[str]):
    def run(self) -> None:
        self.output().save("a b")


class Raw(sd.Task):
    path: str

    def output(self) -> sd.FileTarget[list[int]]:
        return sd.FileTarget(self.path, sd.JSON(list[int]))


class Undeclared(sd.Task):
    pass


class Sum(sd.AutoTask[int]):
    numbers: sd.TaskLoads[list[int]]

    def run(self) -> None:
        self.output().save(sum(self.numbers.output().load()))


class Anything(sd.AutoTask[int]):
    source: sd.TaskLoads[Any]

    def run(self) -> None:
        self.output().save(1)


def test_accepts_a_task_producing_the_type(local_root: str) -> None:
    total = Sum(numbers=Numbers(n=4))
    sd.build(total).raise_on_failure()
    assert total.load() == 6


def test_rejects_a_task_producing_another_type() -> None:
    with pytest.raises(
        ValidationError, match=r"loads as list\[int\], got Words, whose output loads as str"
    ):
        Sum(numbers=Words())


def test_reads_the_type_from_an_output_annotation() -> None:
    assert Raw.__loads_type__ == list[int]
    raw = Raw(path="memory://raw.json")
    assert Sum.model_validate({"numbers": raw}).numbers.id == raw.id


def test_a_task_that_declares_no_output_type_gets_a_fix() -> None:
    with pytest.raises(ValidationError, match="does not declare what its output loads as"):
        Sum(numbers=Undeclared())


def test_any_accepts_every_loadable_task() -> None:
    assert Anything(source=Words()).source == Words()


def test_round_trips_as_the_concrete_class() -> None:
    total = Sum(numbers=Numbers(n=2))
    restored = sd.Task.model_validate_json(total.model_dump_json())
    assert isinstance(restored, Sum)
    assert isinstance(restored.numbers, Numbers)
    assert restored.id == total.id


def test_forward_references_fail_when_the_class_is_defined() -> None:
    with pytest.raises(sd.TaskDefinitionError, match="give the type itself"):

        class Late(sd.AutoTask[int]):
            numbers: sd.TaskLoads["list[int]"]
