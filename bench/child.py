"""Runs a benchmark body in a fresh Python process (memory and caches of earlier sizes cannot help it) and returns
the JSON object it prints last."""
from __future__ import annotations

import json
import subprocess
import sys


def run_child(code: str, *args: object) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
