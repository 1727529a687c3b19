"""Benchmark ground truth: architecture → trained accuracy, from the official files or compact tables."""

from ntknas.groundtruth.benchmark import Benchmark, load_benchmark

__all__ = ["Benchmark", "load_benchmark"]
