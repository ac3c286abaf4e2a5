"""docs/optimisers.md: its Python blocks, run in order as one script, must work and keep their promises."""
import pathlib
import re
import runpy

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "optimisers.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def test_guide_has_the_worked_examples():
    text = GUIDE.read_text()
    assert "## Write your own optimiser" in text
    blocks = _python_blocks()
    assert len(blocks) >= 5
    assert any("class Lion(sigma.optim.GradientOptimiser)" in b for b in blocks)
    assert any("class OneFifthES(sigma.optim.ForwardOptimiser)" in b for b in blocks)


def test_guide_examples_run(tmp_path, monkeypatch):
    import sigma.optim
    from sigma.optim import registry

    # The guide registers "lion"; keep the registry as it was for other tests.
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    # Written to a file (not exec'd from a string) so that the rules have
    # source, as they do in a user's module.
    script = tmp_path / "optimiser_guide.py"
    script.write_text("\n".join(_python_blocks()))
    namespace = runpy.run_path(str(script))
    assert sigma.optim.get("lion") is namespace["Lion"]
    assert namespace["loss"] <= namespace["loss_before"]
