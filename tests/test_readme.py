"""The README's test command is exactly what .ci/run runs, and its Python example works as written."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = [block.strip() for block in readme_blocks("bash") if "pytest" in block]
    assert len(test_command) == 1
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert ci_lines == [test_command[0]]


def test_readme_python_example_runs_and_predicts_at_the_third_observation() -> None:
    (example,) = readme_blocks("python")
    namespace: dict[str, object] = {}
    exec(example, namespace)
    result = namespace["result"]
    assert list(result.status_names) == ["warming_up", "warming_up", "predicted"]
    probs = result.probs[-1]
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    assert np.isnan(result.probs[0]).all()
