"""``python -m rotator``."""

import sys

from rotator.cli import main

sys.exit(main())
