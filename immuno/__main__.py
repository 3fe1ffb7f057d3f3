"""``python -m immuno``: the same as the ``immuno`` command."""

import sys

from immuno.cli import main

sys.exit(main())
