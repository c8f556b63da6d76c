"""The task model: parameters, families, JSON round trips, polymorphism, dynamic deps."""

import types
from collections.abc import Generator
from typing import Any

import pytest
from pydantic import ValidationError

import stardag_core as sd
from tests.core.examples.ml import Mixed, Train, combine


class Source(sd.AutoTask[list[int]]):
    size: int

    def run(self) -> None:
        self.output().save(list(range(self.size)))


class Doubled(Source):
    factor: int = 2

    def run(self) -> None:
        self.output().save([i * self.factor for i in range(self.size)])


class Total(sd.AutoTask[int]):
    source: Source
    numbers: sd.TaskLoads[list[int]] | None = None

    def run(self) -> None:
        self.output().save(sum(self.source.load()))


def test_invalid_parameter_names_the_field_and_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Source(size="many")
    error = caught.value.errors()[0]
    assert error["loc"] == ("size",)
    assert error["input"] == "many"
    assert "size" in str(caught.value)


def test_missing_and_unknown_parameters_are_errors() -> None:
    with pytest.raises(ValidationError, match="size"):
        Source()  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="colour"):
        Source(size=1, colour="red")  # type: ignore[call-arg]


def test_tasks_are_frozen_and_hash_by_id() -> None:
    task = Source(size=3)
    with pytest.raises(ValidationError, match="frozen"):
        task.size = 4  # type: ignore[misc]
    assert {task, Source(size=3)} == {task}
    assert hash(task) == hash(task.id)


def test_family_defaults_and_class_keywords() -> None:
    assert (Source.get_namespace(), Source.get_name(), Source.get_version()) == ("", "Source", "")
    assert (Train.get_namespace(), Train.get_name(), Train.get_version()) == (
        "examples.ml",
        "Train",
        "2",
    )

    class Renamed(sd.AutoTask[int], task_namespace="other", name="renamed", version=3):
        x: int

    assert (Renamed.get_namespace(), Renamed.get_name(), Renamed.get_version()) == (
        "other",
        "renamed",
        "3",
    )


def test_reserved_parameter_names_fail_when_the_class_is_defined() -> None:
    with pytest.raises(sd.TaskDefinitionError, match="'version'"):

        class Bad(sd.AutoTask[int]):
            version: str

    with (
        pytest.raises(sd.TaskDefinitionError, match="'id'"),
        pytest.warns(UserWarning, match="shadows"),
    ):

        class AlsoBad(sd.AutoTask[int]):
            id: int  # type: ignore[assignment]


@pytest.mark.parametrize(
    "task",
    [
        Source(size=3),
        Total(source=Source(size=2)),
        Total(source=Doubled(size=2, factor=3), numbers=Doubled(size=1)),
        Mixed.model_validate(
            {"text": "x", "when": "2024-01-01", "options": {}, "threads": 8, "added": "new"}
        ),
        combine(
            first=Train(learning_rate=0.1, layers=[1], tags={"a"}),
            second=Train(learning_rate=0.2, layers=[], tags=set()),
        ),
    ],
    ids=lambda task: type(task).__name__,
)
def test_json_round_trip_keeps_class_and_id(task: sd.Task) -> None:
    restored = sd.Task.model_validate_json(task.model_dump_json())
    assert type(restored) is type(task)
    assert restored == task
    assert restored.id == task.id
    assert type(task).model_validate_json(task.model_dump_json()) == task


def test_base_class_parameter_accepts_subclasses_and_round_trips() -> None:
    total = Total(source=Doubled(size=2, factor=5))
    dumped = total.model_dump()
    assert dumped["source"] == {
        "__namespace": "",
        "__name": "Doubled",
        "version": "",
        "size": 2,
        "factor": 5,
    }
    restored = Total.model_validate(dumped)
    assert isinstance(restored.source, Doubled)
    assert restored.source.factor == 5
    assert restored.id == total.id


def test_stored_task_of_a_foreign_family_or_version_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"unknown task family 'nowhere\.Ghost'"):
        sd.Task.model_validate({"__namespace": "nowhere", "__name": "Ghost", "version": ""})
    with pytest.raises(ValidationError, match="not a subclass"):
        Total.model_validate({"source": {"__namespace": "", "__name": "Total", "version": ""}})
    stored = Train(learning_rate=0.1, layers=[], tags=set()).model_dump()
    with pytest.raises(ValidationError, match="version '1' but Train is at version '2'"):
        Train.model_validate({**stored, "version": "1"})


def test_stored_task_from_before_a_compat_parameter_loads_with_its_default() -> None:
    stored: dict[str, Any] = {"__namespace": "examples.ml", "__name": "Mixed", "version": ""}
    stored |= {"text": "x", "when": "2024-01-01", "options": {}}
    restored = sd.Task.model_validate(stored)
    assert isinstance(restored, Mixed)
    assert restored.added == "legacy"


def test_requires_defaults_to_the_task_parameters() -> None:
    source = Source(size=2)
    assert Total(source=source).requires() == {"source": source}
    assert Source(size=1).requires() is None
    assert sd.flatten_tasks(Total(source=source, numbers=Doubled(size=1)).requires()) == [
        source,
        Doubled(size=1),
    ]


def test_model_copy_with_update_is_a_new_task_with_its_own_id() -> None:
    task = Source(size=2)
    _ = task.id
    changed = task.model_copy(update={"size": 5})
    assert changed.size == 5
    assert changed.id == Source(size=5).id
    assert task.model_copy().id == task.id


def test_complete_when_every_output_exists(local_root: str) -> None:
    task = Source(size=3)
    assert not task.complete()
    task.run()
    assert task.complete()
    assert task.load() == [0, 1, 2]


def test_task_without_output_is_never_complete() -> None:
    class SideEffect(sd.Task):
        def run(self) -> None:
            pass

    assert SideEffect().output() is None
    assert not SideEffect().complete()


def test_run_may_yield_dynamic_dependencies(local_root: str) -> None:
    class Fanout(sd.AutoTask[int]):
        n: int

        def run(self) -> Generator[list[Source], None, None]:
            parts = [Source(size=i) for i in range(self.n)]
            yield parts
            self.output().save(sum(len(part.load()) for part in parts))

    task = Fanout(n=3)
    steps = task.run()
    yielded = next(steps)
    assert yielded == [Source(size=0), Source(size=1), Source(size=2)]
    for part in yielded:
        part.run()
    with pytest.raises(StopIteration):
        next(steps)
    assert task.load() == 3


def test_namespace_applies_to_the_module_and_its_submodules() -> None:
    sd.namespace("pkg", scope="tests.fake_package")
    body = {"__module__": "tests.fake_package.sub.module", "run": Source.run}
    Nested: type[sd.AutoTask[int]] = types.new_class(
        "Nested", (sd.AutoTask[int],), {}, lambda ns: ns.update(body)
    )
    assert Nested.get_namespace() == "pkg"
    assert sd.default_relpath(Nested(), "json").startswith("pkg/Nested/")
