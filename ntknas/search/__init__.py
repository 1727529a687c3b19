"""Metric-guided architecture search: the driver, proposals, proxies and strategies."""
