"""``python -m appliance``: the same command line as the ``invispose`` script."""

import sys

from appliance.cli import main

sys.exit(main())
