"""``python -m rotator.emulator``: see :mod:`rotator.emulator.cli`."""

from rotator.emulator.cli import main

raise SystemExit(main())
