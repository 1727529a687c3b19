"""ntknas.report"""
