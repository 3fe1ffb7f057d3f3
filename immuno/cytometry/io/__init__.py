"""File formats in and out of the cytometry room.

FCS reading and writing (versions 2.0 to 3.2, several data sets, the vendor quirks real
files carry), the spillover matrices files hold (``$SPILLOVER``, ``$COMP``, ``$DFCiTOj``
keywords, CSV matrix files), marker names and their spellings in ``$PnS``, GatingML 2.0
import and export, FlowJo 10 workspaces as gating templates, and the compressed
per-event ``.h5ad`` files. It builds on :mod:`immuno.cytometry.engine` only (a gate file
is read into the engine's gates and transforms); it knows nothing of panels' analyses
or of batches.
"""
