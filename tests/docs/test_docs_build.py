"""The documentation site builds with warnings as errors, and its API reference
holds the public names (so a broken docstring or a guide missing from the
toctree fails here, not later in CI's docs job)."""
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sphinx", reason="the docs build needs Sphinx: pip install sphinx myst-parser")
pytest.importorskip("myst_parser", reason="the docs build needs MyST for the Markdown guides: pip install myst-parser")

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


def test_docs_build_cleanly(tmp_path):
    output = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
         str(DOCS), str(output)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"sphinx build failed:\n{result.stderr[-5000:]}"
    for guide in sorted(DOCS.glob("*.md")):
        assert (output / f"{guide.stem}.html").is_file(), f"{guide.name} was not built (missing from the toctree?)"
    index = (output / "index.html").read_text()
    assert "getting-started.html" in index and "api/index.html" in index
    reference = {name: (output / "api" / f"{name}.html").read_text()
                 for name in ("sigma", "nn", "optim", "data", "training", "io", "backends")}
    for page, public_name in [("sigma", "sigma.Tensor.backward"), ("sigma", "sigma.value_and_grad"),
                              ("nn", "sigma.nn.Linear"), ("optim", "sigma.optim.Adam"),
                              ("data", "sigma.data.MinibatchIterator"), ("training", "sigma.training.Trainer"),
                              ("io", "sigma.io.load_weights"), ("backends", "backends.Backend")]:
        assert f'id="{public_name}"' in reference[page], f"api/{page} does not describe {public_name}"
