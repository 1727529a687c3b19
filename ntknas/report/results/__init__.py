"""The results page of a study folder (``ntknas study``; ``ntknas report STUDY_DIR`` writes the same).

One page, ``results.md`` and ``results.html`` (self-contained: PNGs embedded), with one section
per claim of the paper (one module each): the measured numbers with their 95 % confidence
intervals, the paired differences every verdict rests on, the figures, the published numbers we
can compare with, and ONE verdict sentence ending in one label (supported, contradicted,
inconclusive) that a rule written once in :mod:`.labels` decides. Every number of a verdict is
*cited*: ``verdicts.json`` lists the file, record and field it comes from. Nothing here imports
experiment code: the page is built from the study folder's files alone.
"""

from ntknas.report.results.citing import Cited, Verdict, field_value, find_record
from ntknas.report.results.labels import CONTRADICTED, INCONCLUSIVE, LABELS, RULES, SUPPORTED
from ntknas.report.results.page import (
    RESULTS_HTML,
    RESULTS_MD,
    VERDICTS_JSON,
    is_study_folder,
    portable_command,
    portable_text,
    write_results_page,
)

__all__ = ["CONTRADICTED", "INCONCLUSIVE", "LABELS", "RESULTS_HTML", "RESULTS_MD", "RULES", "SUPPORTED",
           "VERDICTS_JSON", "Cited", "Verdict", "field_value", "find_record", "is_study_folder", "portable_command",
           "portable_text", "write_results_page"]
