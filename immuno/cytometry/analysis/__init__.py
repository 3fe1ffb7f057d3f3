"""What is computed from one sample's events.

Acquisition QC (unstable flow, margin events, negative scatter), gates placed from the
data (density valleys, control percentiles, singlet ratios, Gaussian mixtures), the
placement of a panel's whole gate hierarchy, population expressions, statistics and
headline features, and exploratory clustering. Functions take arrays (or AnnData for
clustering) and return results; they read no files and know nothing of sample sheets.
Built on :mod:`immuno.cytometry.engine` and :mod:`immuno.cytometry.io`.
"""
