"""The chimerism batch and single-biopsy runs, which bring the methods together.

The reader registry that tells an export's method from its content and reads one sample
of a multi-sample file (:mod:`~immuno.chimerism.pipeline.readers`); the sheet rows of a
batch, their references and the file cache (:mod:`~immuno.chimerism.pipeline.inputs`);
the estimate of every biopsy of a batch with its method, references and DNA input
(:mod:`~immuno.chimerism.pipeline.process`); the room's result files, measurements, QC
tables and AnnData (:mod:`~immuno.chimerism.pipeline.outputs`) and figures
(:mod:`~immuno.chimerism.pipeline.plots`); and one biopsy estimated from its exports
alone (:mod:`~immuno.chimerism.pipeline.single`). It is the top of the room: it may import
every method and the common package, and nothing in the room imports it but the room's
checks (for the sheet's references) and its public interface.
"""
