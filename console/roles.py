"""Roles and what each may do: one table, so every route asks for a permission, never a role name.

A partner user sees only alerts routed to its agency (``Alert.routed_partner_ids``); that scoping
is applied where alerts are read (:mod:`console.alert_views`), on top of the permission here.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Who a console user is."""

    ADMIN = "admin"
    OPERATOR = "operator"
    ANALYST = "analyst"
    PARTNER = "partner"


class Permission(StrEnum):
    """One thing a route can require."""

    ALERTS_READ = "alerts.read"
    ALERTS_ACT = "alerts.act"  # acknowledge, escalate, resolve, reopen
    EVIDENCE_VIEW = "evidence.view"
    MAP_VIEW = "map.view"
    DETECTIONS_REVIEW = "detections.review"
    DATASET_EXPORT = "dataset.export"
    CASES = "cases"
    REPORTS = "reports"
    USERS_MANAGE = "users.manage"
    RETENTION_PURGE = "retention.purge"


P = Permission
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({P.ALERTS_READ, P.ALERTS_ACT, P.EVIDENCE_VIEW, P.MAP_VIEW}),
    Role.ANALYST: frozenset({P.ALERTS_READ, P.EVIDENCE_VIEW, P.MAP_VIEW, P.DETECTIONS_REVIEW, P.DATASET_EXPORT,
                             P.CASES, P.REPORTS}),
    Role.PARTNER: frozenset({P.ALERTS_READ, P.MAP_VIEW}),
}


def allowed(role: Role | str, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission`` (an unknown role grants nothing)."""
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False


def home_path(role: Role | str) -> str:
    """The page a user lands on after log-in."""
    return {Role.ANALYST: "/review", Role.ADMIN: "/operator"}.get(Role(role), "/operator")
