"""Characterization and programming routines, written against the ArrayBackend interface."""
