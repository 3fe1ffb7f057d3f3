"""File formats into the chemokine room: every plate export read into one plate model.

One module per export format: Luminex xPONENT CSV (FLEXMAP 3D, MAGPIX, LX200, with its
blocks in their own module) and Intelliflex native CSV, Bio-Plex Manager Excel and XML, MSD
Discovery Workbench and Methodical Mind, QuantStudio / ViiA 7, Bio-Rad CFX and RDML; the
plate model they all fill (:mod:`~immuno.chemokines.io.plate`: wells tables, issues,
vendor cells and their printed precision), delimited text tables with the decimal
separator told from the numbers, plate layouts, and the one registry that tells a file's
format from its content and reads it (:mod:`~immuno.chemokines.io.readers`). It is the
first stage: it imports nothing else of the room and fits, judges and computes nothing.
"""
