"""Install Sigma: the framework (sigma), its array backends (backends) and the GUI (sigma_gui)."""
from setuptools import find_packages, setup

setup(
    name="sigma",
    version="0.1.0",
    description="A machine-learning framework with its own autodiff, CPU/CUDA backends, trainer and GUI",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["sigma", "sigma.*", "backends", "backends.*", "sigma_gui", "sigma_gui.*",
                                    "sigma_marketplace", "sigma_marketplace.*"]),
    include_package_data=True,
    package_data={"sigma": ["data/bundled/*"]},
    install_requires=["numpy>=2", "numba>=0.60", "h5py>=3.8", "tqdm>=4.60", "threadpoolctl>=3"],
    extras_require={
        "gui": ["pyqt6<6.12", "pyqtgraph>=0.13"],
        "cuda": ["cupy-cuda12x>=13"],
        "mpi": ["mpi4py>=3.1"],
        "images": ["pillow>=10"],
        "docs": ["sphinx>=7", "myst-parser>=2"],
        # Plots of the benchmark scripts and examples' --plot options only; Sigma never imports it.
        "bench": ["matplotlib>=3.8"],
        # Everything the test suite exercises: PyTorch 2.13 (CPU) is the oracle, never a dependency of Sigma.
        "test": ["pytest>=8", "pytest-xdist>=3", "pytest-rerunfailures>=14", "pytest-qt>=4", "hypothesis>=6", "threadpoolctl>=3",
                 "torch==2.13.0", "pillow>=10", "pyqt6<6.12", "pyqtgraph>=0.13", "mpi4py>=3.1",
                 "sphinx>=7", "myst-parser>=2", "matplotlib>=3.8"],
    },
    entry_points={
        "console_scripts": ["sigma=sigma.cli:main"],
        "sigma.backends": [],
        # Marketplace registers like any third-party optimiser would.
        "sigma.optimisers": ["marketplace-v1 = sigma_marketplace:MarketplaceV1",
                             "marketplace-v2 = sigma_marketplace:MarketplaceV2"],
    },
)
