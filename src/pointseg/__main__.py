"""``python -m pointseg``."""

import sys

from pointseg.cli import main

sys.exit(main())
