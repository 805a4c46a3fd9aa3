"""A package scanned by register_tasks_from_package in the tests."""
