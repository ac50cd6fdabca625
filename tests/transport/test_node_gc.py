"""A running node tunes Python's garbage collector for many short-lived objects per job."""

from __future__ import annotations

import json
import subprocess
import sys

from transport.node_cli import GC_THRESHOLD
from transport.testing import ROOT


def test_tune_gc_freezes_the_startup_objects_and_raises_the_thresholds() -> None:
    # Given a fresh interpreter with Python's defaults, When the node's tuning runs
    code = (
        "import gc, json; from transport.node_cli import tune_gc; before = gc.get_threshold(); "
        "tune_gc(); print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after, frozen = json.loads(out.stdout)
    # Expect the young generation collected far less often, and what startup built left alone
    assert tuple(after) == GC_THRESHOLD and after[0] > before[0] * 10
    assert frozen > 1000
