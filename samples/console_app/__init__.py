"""A console program using EverTask without a web framework."""
