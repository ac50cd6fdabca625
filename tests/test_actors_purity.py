"""Given the actors package, expect no module to reach for I/O, clocks, randomness or tasks.

This is what makes the simulator a proof: an actor that imported ``time`` or ``random`` would
behave differently on replay.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ACTORS = Path(__file__).resolve().parent.parent / "actors"

FORBIDDEN = {
    "trio",
    "socket",
    "time",
    "random",
    "uuid",
    "threading",
    "asyncio",
    "os",
    "redis",
    "pymongo",
    "subprocess",
    "multiprocessing",
    "select",
    "selectors",
    "secrets",
    "datetime",
    "concurrent",
    "signal",
    "shutil",
    "tempfile",
    "pathlib",
    "io",
    "sqlite3",
    "transport",
    "sim",
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def violations(source: str, filename: str) -> list[str]:
    """One line per forbidden import or call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{filename}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{filename}:{node.lineno}: calls {node.func.id}()")
    return found


def test_no_actor_module_does_io_or_reads_clocks() -> None:
    files = sorted(ACTORS.rglob("*.py"))
    assert len(files) >= 5
    problems = [v for f in files for v in violations(f.read_text(), str(f))]
    assert problems == []


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from random import random",
        "from trio import sleep",
        "import uuid as u",
        "def f():\n    import socket",
        "from asyncio import run",
        "x = open('f')",
        "from redis import Redis",
        "import pymongo",
        "import threading",
    ],
)
def test_guard_catches_each_forbidden_form(source: str) -> None:
    assert violations(source, "bad.py")


def test_guard_allows_pure_imports() -> None:
    assert violations("from dataclasses import dataclass\nimport math\nfrom typing import Any", "ok.py") == []
