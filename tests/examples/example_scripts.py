"""Loading example scripts as modules, and skipping when their data is absent."""
import importlib.util
import pathlib

import pytest

import sigma.data

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    """examples/<name>.py as a module, so a test can call its main()."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_dataset(name: str) -> None:
    """Skip, naming why, when a built-in dataset is not on the data search path."""
    try:
        sigma.data.load(name, split="test", download=False)
    except sigma.data.DataError as error:
        pytest.skip(f"{name} is not on the data search path here: {error}")
