"""Fuse: georeferencing, the multi-sensor tracker, border geometry and events.

Not built yet (issue #6). When it is, this package exposes ``build_stage(config, registry)``.
"""
