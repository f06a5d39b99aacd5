"""``python -m promptlooper.cli``: the same as the ``promptlooper`` command."""

import sys

from . import console

sys.exit(console())
