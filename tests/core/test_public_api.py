"""The public surface: one sorted __all__, every name documented."""

import inspect

import stardag_core as sd


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(sd) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(sd, name)).__name__ == "module"}
    assert sd.__all__ == sorted(sd.__all__, key=lambda name: (not name.isupper(), name))
    assert set(sd.__all__) == public - modules


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in sd.__all__
        if (inspect.isclass(getattr(sd, name)) or inspect.isfunction(getattr(sd, name)))
        and not (getattr(sd, name).__doc__ or "").strip()
    ]
    assert undocumented == []


def test_task_is_the_decorator() -> None:
    assert callable(sd.task)
    assert sd.task.__module__ == "stardag_core.decorator"
