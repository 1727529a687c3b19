"""ntknas.train"""
