"""Helpers shared by several test modules (on the test path via ``pythonpath``)."""
