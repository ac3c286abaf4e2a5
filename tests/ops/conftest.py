"""Fixtures of the op tests (the checks themselves are in ops_oracle.py)."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A numpy generator for test inputs, seeded the same for every test."""
    return np.random.default_rng(20261123)
