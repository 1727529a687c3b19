"""``python -m ntknas``: the ``ntknas`` command, for environments whose scripts are not on PATH."""

import sys

from ntknas.cli import main

sys.exit(main())
