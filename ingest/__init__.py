"""Ingest: drone push API, pulled camera sources, MISB ST 0601 KLV, frames onto ``ibet.frames.v1``.

A source, not a consumer: it runs as ``ibet ingest serve`` (the push API) and ``ibet ingest pull``
(cameras), and so exposes no ``build_stage``.
"""
