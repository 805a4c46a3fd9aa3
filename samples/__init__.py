"""Runnable samples of EverTask for Python."""
