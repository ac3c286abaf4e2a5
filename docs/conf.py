"""Sphinx configuration for Sigma's documentation: Markdown guides (MyST) and an API reference from docstrings.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout, not another installed copy

import sigma  # noqa: E402

project = "Sigma"
author = "the Sigma authors"
copyright = "2026, the Sigma authors"
release = sigma.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# Guides link to their own sections as [text](#the-sigma-command); these anchors exist only when
# MyST generates them from the headings.
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Other helpers write these guides; the site lists each one once it exists, so a checkout without
# one still builds with warnings as errors.
OPTIONAL_GUIDES = ("gui", "scaling", "marketplace")


def _drop_missing_optional_guides(app, docname, source):
    if docname != "index":
        return
    missing = [name for name in OPTIONAL_GUIDES if not (DOCS / f"{name}.md").exists()]
    lines = source[0].splitlines()
    source[0] = "\n".join(line for line in lines if line.strip() not in missing) + "\n"


def setup(app):
    app.connect("source-read", _drop_missing_optional_guides)
