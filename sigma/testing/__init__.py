"""Tools for people who extend Sigma: gradient checks and conformance kits."""
from sigma.testing.gradcheck import GradcheckError, gradcheck, gradgradcheck
from sigma.testing.optimiser import check_optimiser
