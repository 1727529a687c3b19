"""Statistics over stored results (rank correlations, paired comparisons, bootstrap intervals); no torch."""

from ntknas.analysis.aggregate import log_rank_sum
from ntknas.analysis.paired import MeanDifference, PairedTau, mean_difference, paired_kendall
from ntknas.analysis.statistics import Correlation, rank_correlation

__all__ = [
    "Correlation", "MeanDifference", "PairedTau", "log_rank_sum", "mean_difference", "paired_kendall",
    "rank_correlation",
]
