"""The app's configuration."""

from __future__ import annotations

from django.apps import AppConfig


class ReportsConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Starts nothing: ``ready()`` runs in every process that loads Django (each management
    command, the autoreloader's parent, a pre-forking server's master), so the web host
    starts at its first use instead (:func:`.runtime.web_host`)."""

    name = "samples.django_app.reports"
    label = "reports"
    default_auto_field = "django.db.models.BigAutoField"
