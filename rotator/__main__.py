"""``python -m rotator``: the same entry as the console script."""

from rotator.cli import entry

entry()
