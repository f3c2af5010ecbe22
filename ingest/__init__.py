"""Ingest: drone push API, pulled camera sources, MISB ST 0601 KLV, frames onto ``ibet.frames.v1``.

Not built yet (issue #4). When it is, this package exposes ``build_stage(config, registry)``.
"""
