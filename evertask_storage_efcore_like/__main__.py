"""``python -m evertask_storage_efcore_like``: see :mod:`evertask_storage_efcore_like.cli`."""

import sys

from .cli import main

sys.exit(main())
