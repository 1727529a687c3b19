"""ntknas.experiments"""
