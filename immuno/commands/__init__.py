"""Subcommands of the ``immuno`` CLI, one module per assay."""
