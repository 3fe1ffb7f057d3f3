"""A run of the workflow, from the command to a complete, verifiable results folder.

:mod:`~immuno.run.workflow` is ``immuno run``: it validates every batch, takes the results
folder's lock (:mod:`~immuno.run.lock`: one run per results folder, a lock left by a dead
run recovered), hashes the inputs once and starts Snakemake on the workflow shipped in the
package. Each rule's step runs through :mod:`~immuno.run.steps`, which checks the step's
inputs against the run's hashes before and after the step and marks its outputs while it
writes them. :mod:`~immuno.run.collect` merges a batch's assay tables and writes
``provenance.json`` last (:mod:`~immuno.run.provenance`: inputs, panels and outputs with
their SHA-256, software versions, the results schema version), and
:mod:`~immuno.run.verify` re-hashes a results folder against it. The run builds on the
contracts (:mod:`immuno.contract`) and knows nothing of the command line: the step runner
is handed the command to run.
"""
