"""Subcommands of the ``immuno`` CLI, one module per assay.

Each module's ``register(subparsers)`` adds its subcommands when any ``immuno`` command
starts, so the handlers import their room in their own body ("kept off start-up"): a
module-level import would load the room's numpy, pandas, numba or anndata for every
command, including each short workflow step.
"""
