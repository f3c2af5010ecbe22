"""Simulator: scenarios on the real border, sensors, targets, renderer, exact ground truth.

Not built yet (issue #3).
"""
