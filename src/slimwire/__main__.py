"""``python -m slimwire`` is the ``slimwire`` command."""

import sys

from slimwire.cli import main

sys.exit(main())
