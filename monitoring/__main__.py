"""``python -m monitoring``: the command line."""

import sys

from monitoring.cli import main

sys.exit(main())
