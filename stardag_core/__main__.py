"""``python -m stardag_core``: the ``stardag`` command line."""

from stardag_core.cli import app

app(prog_name="stardag")
