"""Every guide's Python blocks run, in order, as one script per guide, so the
docs cannot rot. A block fenced as ```python no-run is shown but not run
(for commands that need a GPU, MPI or a display)."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
GUIDES = sorted(p for p in DOCS.glob("*.md"))
# A guide is read by people: its code should finish in well under a minute, and a hung one must not
# hold the suite for ten.
TIME_LIMIT_SECONDS = 180


def _skip_without(dataset: str, code: str) -> None:
    """Guides that train on a built-in dataset skip, naming why, where it cannot be found
    (no SIGMA_DATA and no network), like every other test that needs it."""
    if f'load("{dataset}"' not in code:
        return
    import sigma.data
    try:
        sigma.data.load(dataset, split="test", download=False)
    except sigma.data.DataError as error:
        pytest.skip(f"the guide uses {dataset}, which is not on the data search path here: {error}")


def python_blocks(text: str):
    return re.findall(r"^```python[ \t]*\n(.*?)^```", text, re.S | re.M)


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_guide_code_runs(guide, tmp_path):
    blocks = python_blocks(guide.read_text())
    if not blocks:
        pytest.skip(f"{guide.name} has no Python blocks")
    code = "\n\n".join(blocks)
    for dataset in ("mnist", "fashion_mnist"):
        _skip_without(dataset, code)
    script = tmp_path / f"{guide.stem}_snippets.py"
    script.write_text(code)
    env = dict(os.environ, MPLBACKEND="Agg", QT_QPA_PLATFORM="offscreen")
    try:
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=TIME_LIMIT_SECONDS)
    except subprocess.TimeoutExpired as expired:
        output = expired.stderr or b""  # bytes even with text=True
        output = output.decode(errors="replace") if isinstance(output, bytes) else output
        pytest.fail(f"{guide.name}: its code ran longer than {TIME_LIMIT_SECONDS} s (guides should take under "
                    f"a minute: use small data); its last output:\n{output[-2000:]}")
    assert result.returncode == 0, f"{guide.name}: its code failed:\n{result.stderr[-3000:]}"
