"""``python -m evertask.cli``: the ``evertask`` command line."""

import sys

from . import main

sys.exit(main())
