"""ntknas.store"""
