"""The project's ``manage.py``: ``python -m samples.django_app <command>``."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run a Django management command with the sample's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "samples.django_app.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
