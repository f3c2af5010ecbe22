"""Console: the operators' live alert map and the analysts' review desk (FastAPI + pages).

Not built yet (issue #8).
"""
