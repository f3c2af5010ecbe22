"""Alerts: rules, partners and duty rosters, routing, escalation, channels and the outbox.

Not built yet (issue #7). When it is, this package exposes ``build_stage(config, registry)``.
"""
