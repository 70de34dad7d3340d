"""Every ```python block of README.md runs, in order, in one namespace (on the embedded model, as it says).

One test per block, so a failure names its block; a block that raised still counts as run, so the blocks
after it are tested on whatever the namespace then holds.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _heading(index: int) -> str:
    """The README section a block sits in, for the test id."""
    text = README.read_text()
    start = [m.start() for m in re.finditer(r"^```python\n", text, flags=re.M)][index]
    titles = re.findall(r"^#+ (.+)$", text[:start], flags=re.M)
    return f"{index}-{titles[-1] if titles else 'top'}".replace(" ", "_")


class _Runner:
    """Runs the blocks lazily, in README order, and remembers each block's error (or None)."""

    def __init__(self) -> None:
        self.namespace: dict = {"__name__": "readme"}
        self.errors: list[str | None] = []

    def run_through(self, index: int) -> str | None:
        while len(self.errors) <= index:
            i = len(self.errors)
            try:
                exec(compile(BLOCKS[i], f"README.md python block {i}", "exec"), self.namespace)
                self.errors.append(None)
            except Exception:
                self.errors.append(traceback.format_exc(limit=-3))
        return self.errors[index]


@pytest.fixture(scope="module")
def runner() -> _Runner:
    return _Runner()


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3, "README.md lost its ```python blocks (the extraction regex no longer matches?)"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[_heading(i) for i in range(len(BLOCKS))])
def test_readme_block_runs(runner, index):
    error = runner.run_through(index)
    assert error is None, f"README python block {index} raised:\n{error}\n--- block ---\n{BLOCKS[index]}"
