"""Runs ``ntknas`` in a subprocess with the tests' tiny NB201 networks.

``python tests/tiny_cli.py correlate ...`` is ``ntknas correlate ...`` whose networks are
TINY_NB201 (in worker processes too: the option travels in the run's config). With
NTKNAS_TEST_ITEM_SECONDS set, each measurement in this process also sleeps that long, so that a
test can signal a run while it goes on; with NTKNAS_TEST_ITEM_STARTED (a folder) set too, the
process that sleeps first writes a file named by its process id there, so that the test knows
which processes are mid-item.
"""

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_data import TINY_NB201  # noqa: E402

from ntknas.runs import correlate  # noqa: E402

_resolved = correlate.CorrelateConfig.resolved


def _tiny(self, info):
    return replace(_resolved(self, info), network_options=dict(TINY_NB201))


correlate.CorrelateConfig.resolved = _tiny
_seconds = float(os.environ.get("NTKNAS_TEST_ITEM_SECONDS", "0"))
if _seconds:
    _evaluate = correlate._evaluate

    def _slow(*args, **kwargs):
        if started := os.environ.get("NTKNAS_TEST_ITEM_STARTED"):
            Path(started, str(os.getpid())).touch()
        time.sleep(_seconds)
        return _evaluate(*args, **kwargs)

    correlate._evaluate = _slow

if __name__ == "__main__":
    from ntknas.cli import main

    sys.exit(main(sys.argv[1:]))
