"""Alerts: rules, partners and duty rosters, routing and escalation, channels, the outbox.

Built so far (issue #7, in progress): duty rosters (:mod:`alerts.rosters`), severity and routing
(:mod:`alerts.routing`), alert rules (:mod:`alerts.rules`), partner formats (:mod:`alerts.formats`:
CoT, CAP 1.2, signed webhooks, e-mail), the durable outbox and webhook delivery
(:mod:`alerts.outbox`, :mod:`alerts.delivery`). The alert stage itself (``build_stage``: events
in, alerts out and delivered) is not built yet.
"""
