"""The @task decorator: functions as tasks, Depends, and parity with the class API."""

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any

import pytest

import stardag_core as sd


@sd.task
def get_range(limit: int) -> list[int]:
    return list(range(limit))


@sd.task
def get_sum(integers: sd.Depends[list[int]]) -> int:
    return sum(integers)


def test_function_parameters_become_task_parameters(local_root: str) -> None:
    task = get_range(limit=3)
    assert task.limit == 3  # type: ignore[attr-defined]
    assert isinstance(task, sd.AutoTask)
    assert type(task).__name__ == "get_range"
    sd.build(task).raise_on_failure()
    assert task.output().load() == [0, 1, 2]


def test_depends_receives_the_loaded_value(local_root: str) -> None:
    total = get_sum(integers=get_range(limit=4))
    summary = sd.build(total)
    assert [type(t).__name__ for t in summary.built] == ["get_range", "get_sum"]
    assert total.output().load() == 6


def test_depends_inside_lists_and_dicts(local_root: str) -> None:
    @sd.task
    def concat(parts: list[sd.Depends[list[int]]], named: dict[str, sd.Depends[int]]) -> list[int]:
        return [x for part in parts for x in part] + sorted(named.values())

    task = concat(
        parts=[get_range(limit=2), get_range(limit=3)],
        named={"a": get_sum(integers=get_range(limit=3))},
    )
    sd.build(task).raise_on_failure()
    assert task.output().load() == [0, 1, 0, 1, 2, 3]


def test_depends_rejects_a_task_of_the_wrong_output_type() -> None:
    @sd.task
    def greeting(name: str) -> str:
        return f"hello {name}"

    with pytest.raises(
        ValueError, match=r"loads as list\[int\], got .*greeting, whose output loads as str"
    ):
        get_sum(integers=greeting(name="x"))


def test_name_version_namespace_and_defaults() -> None:
    @sd.task(name="scaled", version="3", namespace="maths")
    def scale(x: float, factor: float = 2.0) -> float:
        return x * factor

    task = scale(x=1.5)
    assert (type(task).get_namespace(), type(task).get_name(), type(task).get_version()) == (
        "maths",
        "scaled",
        "3",
    )
    assert task.factor == 2.0  # type: ignore[attr-defined]
    assert sd.default_relpath(task, "json").startswith("maths/scaled/v3/")


def test_custom_output_path_template_and_callable(local_root: str) -> None:
    @sd.task(output_path="reports/{task.region}/{task.id}.md")
    def region_report(region: str) -> str:
        return f"# {region}"

    @sd.task(output_path=lambda task: f"flat/{task.region}.txt")
    def flat_report(region: str) -> str:
        return region

    report = region_report(region="eu")
    assert report.output().uri == f"{local_root}/reports/eu/{report.id}.md"
    assert flat_report(region="us").output().uri == f"{local_root}/flat/us.txt"
    sd.build(report).raise_on_failure()
    assert report.output().load() == "# eu"


def test_async_functions_become_async_tasks(local_root: str) -> None:
    @sd.task
    async def fetch(n: int) -> list[int]:
        await asyncio.sleep(0)
        return [n] * n

    task = fetch(n=2)
    asyncio.run(task.run())  # type: ignore[arg-type]
    assert task.output().load() == [2, 2]


def test_class_and_decorator_apis_give_the_same_id_and_output(local_root: str) -> None:
    @sd.task
    def add(a: int, b: int) -> int:
        return a + b

    decorated = add(a=1, b=2)

    class add(sd.AutoTask[int]):  # type: ignore[no-redef]
        a: int
        b: int

        def run(self) -> None:
            self.output().save(self.a + self.b)

    from_class = add(a=1, b=2)
    assert from_class.id == decorated.id
    assert from_class.output().uri == decorated.output().uri
    sd.build(decorated).raise_on_failure()
    assert from_class.complete()
    assert from_class.output().load() == 3


def test_explicit_serializer_in_the_return_annotation(local_root: str) -> None:
    @sd.task
    def compressed(n: int) -> Annotated[list[int], sd.GZip(sd.JSON())]:
        return list(range(n))

    task = compressed(n=3)
    assert task.output().uri.endswith(".json.gz")
    sd.build(task).raise_on_failure()
    assert task.output().load() == [0, 1, 2]


def test_definition_errors_name_the_problem() -> None:
    with pytest.raises(sd.TaskDefinitionError, match="needs a return annotation"):

        @sd.task
        def unannotated(x: int):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(sd.TaskDefinitionError, match="'args' is variadic positional"):

        @sd.task
        def variadic(*args: int) -> int:
            return 0

    with pytest.raises(sd.TaskDefinitionError, match="produce a concrete value"):

        @sd.task
        def lazy(n: int) -> Iterator[int]:
            return iter(range(n))


def test_unannotated_parameters_accept_any_json_value() -> None:
    @sd.task
    def echo(value) -> Any:  # type: ignore[no-untyped-def]
        return value

    assert echo(value={"a": [1, 2]}).value == {"a": [1, 2]}  # type: ignore[attr-defined]
