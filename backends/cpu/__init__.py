"""CPU backend (numpy + numba)."""
from backends.cpu.backend import CPUBackend, NumpyRandomStream

__all__ = ["CPUBackend", "NumpyRandomStream"]
