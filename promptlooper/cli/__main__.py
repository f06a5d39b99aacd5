"""``python -m promptlooper.cli``: the same as the ``promptlooper`` command."""

import sys

from . import main

sys.exit(main())
