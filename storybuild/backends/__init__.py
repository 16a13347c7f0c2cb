"""Backends: the things that do an action's work."""
