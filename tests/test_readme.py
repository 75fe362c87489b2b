"""The README: its test command is exactly what .ci/run runs, its Python example works as written, and its reading
list stays within 10 files that hold what it names."""
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


def test_readme_reading_list_is_at_most_ten_files_that_define_what_it_names() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Read in this order", 1)[1].split("\nBeside that path", 1)[0]
    items = re.split(r"\n(?=\d+\. )", section.split("\n1. ", 1)[1])
    assert 1 <= len(items) <= 10, "one observation's path must stay readable in 10 files"
    for item in items:
        path, *names = re.findall(r"`([^`]+)`", item)
        source = (ROOT / path).read_text()
        for name in names:
            if "/" in name or name.endswith((".h", ".cc", ".py")):
                assert (ROOT / name).exists() or (ROOT / path).with_name(name).exists(), name
            else:   # a function or class the item says this file holds: Engine::advance, CpuScheduler::run, _core
                assert re.search(rf"\b{re.escape(name.split('::')[-1].split('.')[-1])}\b", source), (path, name)
