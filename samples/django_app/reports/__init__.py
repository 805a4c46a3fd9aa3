"""The sample's Django app: report tasks, the views that dispatch them, the worker command."""
