"""A Flask application using EverTask: sync routes dispatch with ``dispatch_sync``.

``python -m samples.flask_app`` serves it; see docs/frameworks.md.
"""
