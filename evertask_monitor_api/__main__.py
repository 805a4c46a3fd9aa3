"""``python -m evertask_monitor_api --storage URL``: the standalone read-only monitor."""

import sys

from .standalone import main

sys.exit(main())
