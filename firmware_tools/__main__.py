"""``python -m firmware_tools`` is ``invispose-node``."""

from firmware_tools.cli import main

raise SystemExit(main())
