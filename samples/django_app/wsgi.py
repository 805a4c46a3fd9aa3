"""WSGI entry point: ``gunicorn samples.django_app.wsgi`` (see docs/frameworks.md).

Nothing EverTask starts here: the web process's host starts at its first dispatch, inside
the worker process that serves it (after gunicorn's or uWSGI's fork).
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "samples.django_app.settings")

application = get_wsgi_application()
