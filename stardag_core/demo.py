"""The demo pipeline ``stardag demo`` builds: measurements, their summaries, one report."""

import logging
import random
import statistics

from stardag_core.auto_task import AutoTask
from stardag_core.decorator import Depends, task
from stardag_core.families import namespace

namespace("stardag.demo")
logger = logging.getLogger("stardag.demo")
logger.setLevel(logging.INFO)  # its runs log what they do; the registry keeps the lines


@task
def measure(sensor: str, samples: int, seed: int) -> list[float]:
    """Simulated readings of one sensor."""
    rng = random.Random(f"{sensor}:{seed}")
    logger.info("reading %d samples from sensor %s", samples, sensor)
    return [round(rng.gauss(20.0, 2.5), 3) for _ in range(samples)]


@task
def summarize(readings: Depends[list[float]]) -> dict[str, float]:
    """Mean, spread and range of a sensor's readings."""
    return {
        "mean": round(statistics.fmean(readings), 3),
        "stdev": round(statistics.stdev(readings), 3),
        "min": min(readings),
        "max": max(readings),
    }


@task
def report(summaries: dict[str, Depends[dict[str, float]]]) -> str:
    """A markdown table of every sensor's summary."""
    logger.info("reporting on %d sensors", len(summaries))
    lines = ["| sensor | mean | stdev | min | max |", "|---|---|---|---|---|"]
    for sensor, s in sorted(summaries.items()):
        lines.append(f"| {sensor} | {s['mean']} | {s['stdev']} | {s['min']} | {s['max']} |")
    return "\n".join(lines) + "\n"


def demo_dag(
    sensors: tuple[str, ...] = ("north", "south", "east"), samples: int = 1000
) -> AutoTask[str]:
    """The demo's root task: one report over a summary of each sensor's measurements."""
    return report(
        summaries={
            sensor: summarize(readings=measure(sensor=sensor, samples=samples, seed=0))
            for sensor in sensors
        }
    )
