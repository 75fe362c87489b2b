"""The README's test command is exactly what .ci/run runs, and its Python example works as written."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_two_commands_and_ci_runs_exactly_the_second() -> None:
    demo, tests = (block.strip() for block in readme_blocks("bash"))
    assert demo.endswith('"$V/bin/mbfast" demo') and "pytest" not in demo
    assert '"$V/bin/python" -m pytest && "$V/bin/python" -m pytest bench' in tests
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    # nothing but shell settings and pip's own quietness may precede it: no variable that changes what the tests do
    assert lines == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "export PIP_DISABLE_PIP_VERSION_CHECK=1", tests]


def test_readme_python_example_runs_and_predicts_at_the_third_observation() -> None:
    (example,) = readme_blocks("python")
    namespace: dict[str, object] = {}
    exec(example, namespace)
    result = namespace["result"]
    assert list(result.status_names) == ["warming_up", "warming_up", "predicted"]
    probs = result.probs[-1]
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    assert np.isnan(result.probs[0]).all()
