"""``ntknas study``: the paper's experiments and the LGA-guided search at a named scale or a scale
file, with one results page (see :mod:`ntknas.study.runner` and :mod:`ntknas.study.scales`)."""

from ntknas.study.runner import PARTS, STUDY_FILE, StudyConfig, StudyOutcome, run_study
from ntknas.study.scale_files import load_scale_file
from ntknas.study.scale_table import scale_markdown
from ntknas.study.scales import SCALES, StudyScale, get_scale

__all__ = ["PARTS", "SCALES", "STUDY_FILE", "StudyConfig", "StudyOutcome", "StudyScale", "get_scale", "load_scale_file",
           "run_study", "scale_markdown"]
