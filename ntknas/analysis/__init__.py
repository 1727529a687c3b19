"""Statistics over stored results (rank correlations with bootstrap intervals); no torch."""

from ntknas.analysis.aggregate import log_rank_sum
from ntknas.analysis.statistics import Correlation, rank_correlation

__all__ = ["Correlation", "log_rank_sum", "rank_correlation"]
