"""``python -m samples.flask_app [--port 5000] [--reload]``: serve the Flask sample.

With ``--reload`` the dev server restarts its child process when a file changes; the host
starts in the child at its first request and stops gracefully at each restart (``atexit``).
In production run it under a WSGI server, e.g.
``gunicorn 'samples.flask_app.app:create_app()'`` (docs/frameworks.md).
"""

from __future__ import annotations

import argparse

from .app import create_app


def main() -> None:
    """Parse the arguments and run the development server."""
    parser = argparse.ArgumentParser(prog="python -m samples.flask_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--reload", action="store_true", help="restart on code changes")
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port, use_reloader=args.reload, threaded=True)


if __name__ == "__main__":
    main()
