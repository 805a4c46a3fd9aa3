"""The version of the EverTask distributions (they move in lock-step)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
