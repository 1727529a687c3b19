"""Statistics over stored results (rank correlations with bootstrap intervals); no torch."""

from ntknas.analysis.statistics import Correlation, rank_correlation

__all__ = ["Correlation", "rank_correlation"]
