"""``ntknas study``: the paper's experiments and the LGA-guided search at a named scale, with one
results page (see :mod:`ntknas.study.runner` and :mod:`ntknas.study.scales`)."""

from ntknas.study.runner import PARTS, STUDY_FILE, StudyConfig, StudyOutcome, run_study
from ntknas.study.scales import SCALES, StudyScale, get_scale, scale_markdown

__all__ = ["PARTS", "SCALES", "STUDY_FILE", "StudyConfig", "StudyOutcome", "StudyScale", "get_scale", "run_study",
           "scale_markdown"]
