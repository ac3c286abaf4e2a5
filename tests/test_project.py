"""The project's promises about itself: README's commands and CI agree."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, re.S)


def test_readme_opens_with_demo_and_test_commands():
    commands = _readme_commands()
    assert len(commands) >= 2
    assert "sigma demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = _readme_commands()[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_python_examples_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)\n```", text, re.S)
    assert blocks
    for block in blocks:
        namespace = {}
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["loss"].item() > 0


def test_readme_links_only_docs_that_exist():
    text = (ROOT / "README.md").read_text()
    for path in re.findall(r"`(docs/[\w./-]+\.md)`", text):
        assert (ROOT / path).is_file(), f"README links {path}, which does not exist"
