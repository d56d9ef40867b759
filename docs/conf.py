"""Sphinx configuration of the boogie_tasks documentation (builds offline)."""

import os
import sys
from pathlib import Path

# The repository root, so that autodoc imports boogie_tasks and the test project.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports boogie_tasks.models, which needs Django set up.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

import boogie_tasks  # noqa: E402

project = "boogie_tasks"
author = "boogie_tasks contributors"
copyright = "boogie_tasks contributors"
release = boogie_tasks.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# No intersphinx: the build must work without a network.
templates_path = []
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

try:
    import sphinx_rtd_theme  # noqa: F401
except ImportError:  # the docs extra installs it; the default theme still builds
    html_theme = "alabaster"
else:
    html_theme = "sphinx_rtd_theme"
html_title = f"boogie_tasks {release}"
html_static_path = []
