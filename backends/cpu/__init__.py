"""CPU backend (numpy + numba)."""
import os

# numba's OpenMP threads spin after each parallel kernel by default, and on a
# small machine that spinning starves the BLAS threads of the matmul that
# follows (measured: a 128x784 @ 784x128 product went from 0.3 ms to 8.5 ms).
# Passive waiting costs nothing measurable; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from backends.cpu.backend import CPUBackend, NumpyRandomStream  # noqa: E402

__all__ = ["CPUBackend", "NumpyRandomStream"]
