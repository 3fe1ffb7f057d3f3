"""immuno: the data pipeline of the LYSYME trial's immunology lab.

The package is cut into rooms: the ``immuno`` command (:mod:`immuno.cli`,
:mod:`immuno.commands`), the contracts between rooms (:mod:`immuno.contract`), a workflow
run (:mod:`immuno.run`), the assay rooms (:mod:`immuno.cytometry`,
:mod:`immuno.chemokines`, :mod:`immuno.chimerism`), the study across batches
(:mod:`immuno.study`), the reports (:mod:`immuno.report`) and the demo batch
(:mod:`immuno.demo`); :mod:`immuno.errors` and :mod:`immuno.io` serve them all. Importing
the package loads none of them.

The former top-level module paths (``immuno.batch``, ``immuno.runner``, ``immuno.store``
and the others below) still import, as the moved module itself with a
:class:`DeprecationWarning`, until immuno 0.3.
"""

from immuno._moved import register_moves

register_moves(
    "immuno",
    {
        "runner": "run.workflow",
        "steps": "run.steps",
        "runlock": "run.lock",
        "collect": "run.collect",
        "provenance": "run.provenance",
        "verify": "run.verify",
        "batch": "contract.batch",
        "validate": "contract.validate",
        "panels": "contract.panels",
        "measurements": "contract.measurements",
        "qc": "contract.qc",
        # the notebook API's first home; the study package exports all it held
        "store": "study",
    },
)
