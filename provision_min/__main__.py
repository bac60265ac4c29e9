"""``python3 -m provision_min``: the same as the ``provision-min`` command."""

import sys

from provision_min.cli import main

sys.exit(main())
