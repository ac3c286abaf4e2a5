"""CUDA backend (cupy). Importing this package never imports cupy."""
from backends.cuda.backend import CUDABackend

__all__ = ["CUDABackend"]
