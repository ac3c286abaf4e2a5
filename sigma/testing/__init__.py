"""Tools for people who extend Sigma: gradient checks and conformance kits."""
