"""Kept for importers of the former single module: the results page lives in
:mod:`ntknas.report.results` (one module per claim plus the page assembly)."""

from ntknas.report.results import (
    RESULTS_HTML,
    RESULTS_MD,
    VERDICTS_JSON,
    Cited,
    Verdict,
    field_value,
    find_record,
    is_study_folder,
    write_results_page,
)

__all__ = ["RESULTS_HTML", "RESULTS_MD", "VERDICTS_JSON", "Cited", "Verdict", "field_value", "find_record",
           "is_study_folder", "write_results_page"]
