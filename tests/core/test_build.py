"""Building: only what is missing runs, in dependency order, with a summary."""

import pytest

import stardag_core as sd


class Leaf(sd.AutoTask[int]):
    value: int

    def run(self) -> None:
        self.output().save(self.value)


class Branch(sd.AutoTask[int]):
    left: sd.TaskLoads[int]
    right: sd.TaskLoads[int]

    def run(self) -> None:
        self.output().save(self.left.output().load() + self.right.output().load())


class Broken(sd.AutoTask[int]):
    def run(self) -> None:
        raise RuntimeError("disk on fire")


class Dynamic(sd.AutoTask[int]):
    n: int

    def run(self):  # type: ignore[no-untyped-def]
        leaves = [Leaf(value=i) for i in range(self.n)]
        yield leaves
        self.output().save(sum(leaf.load() for leaf in leaves))


def test_builds_dependencies_first_and_shares_diamonds(local_root: str) -> None:
    shared = Leaf(value=1)
    root = Branch(left=shared, right=Branch(left=shared, right=Leaf(value=2)))
    summary = sd.build(root)
    assert summary.ok
    assert root.load() == 4
    assert [task.id for task in summary.built][-1] == root.id
    assert len(summary.built) == 4  # the shared leaf once
    assert set(summary.durations) == {task.id for task in summary.built}


def test_second_build_skips_what_is_complete(local_root: str) -> None:
    root = Branch(left=Leaf(value=1), right=Leaf(value=2))
    sd.build(root)
    again = sd.build(root)
    assert again.built == []
    assert again.skipped == [root]
    assert repr(again) == "<BuildSummary built=0 skipped=1 failed=0>"


def test_failure_is_reported_with_traceback(local_root: str) -> None:
    summary = sd.build(Branch(left=Broken(), right=Leaf(value=1)))
    assert not summary.ok
    [failure] = summary.failures
    assert failure.task == Broken()
    assert "disk on fire" in failure.traceback
    with pytest.raises(sd.BuildFailedError, match="1 task\\(s\\) failed:\n  Broken\\(\\)"):
        summary.raise_on_failure()


def test_dynamic_dependencies_are_built_then_run_resumes(local_root: str) -> None:
    task = Dynamic(n=3)
    summary = sd.build(task)
    summary.raise_on_failure()
    assert task.load() == 3
    assert {t.id for t in summary.built} == {Leaf(value=i).id for i in range(3)} | {task.id}
