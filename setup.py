"""Packaging beyond pyproject.toml: the workflow travels inside the package.

The workflow (``workflows/``), its default configuration (``config/``) and the assay
definitions (``panels/``) keep their places in the source tree, where lab scientists and
Snakemake users read them, and are shipped as ``immuno/workflows``, ``immuno/config`` and
``immuno/data/panels`` in the installed package, so that ``pip install .`` gives an
``immuno run`` that works from any folder. A package-dir mapping needs an explicit
package list, which pyproject.toml cannot combine with package discovery.
"""

from setuptools import find_packages, setup

SHIPPED = {"immuno.workflows": "workflows", "immuno.config": "config", "immuno.data.panels": "panels"}

setup(packages=[*find_packages(include=["immuno", "immuno.*"]), *SHIPPED], package_dir=SHIPPED)
