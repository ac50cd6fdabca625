"""Helpers shared by several test modules.

``tests/_kit`` is on the test path (pytest's ``pythonpath``) and holds only this package, so
nothing there can shadow ``sim``, ``transport`` or ``actors``.
"""
