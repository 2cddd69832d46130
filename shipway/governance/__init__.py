"""Governance: the gates, their evidence in an append-only audit trail, cards, lineage.

Five gates share one record type (``shipway.core.evidence.GateRecord``): use-case approval,
data readiness, model validation, production readiness and post-deployment review.
Promotion, rollback, approvals, retention and erasure leave records of the same kind,
so an auditor reads one format for every decision. Modules stay small and each owns one
noun: ``trail`` (where records live), ``gates`` (what each gate checks), ``probes`` (the
production-readiness checks that run things), ``readiness`` (when the training pipeline
runs that gate), ``review`` (and its schedule), ``approval``, ``promotion``, ``locks`` (one
lock per model for champion moves), ``cards``, ``audit`` (the offline bundle),
``lineage`` and ``retention``.
"""

from __future__ import annotations

USE_CASE_APPROVAL = "use_case_approval"
DATA_READINESS = "data_readiness"
MODEL_VALIDATION = "model_validation"
PRODUCTION_READINESS = "production_readiness"
POST_DEPLOYMENT_REVIEW = "post_deployment_review"
GATES = (
    USE_CASE_APPROVAL,
    DATA_READINESS,
    MODEL_VALIDATION,
    PRODUCTION_READINESS,
    POST_DEPLOYMENT_REVIEW,
)
"""The five gates, in the order a model meets them."""

HUMAN_APPROVAL = "human_approval"
PROMOTION = "promotion"
ROLLBACK = "rollback"
RETENTION = "retention"
ERASURE = "erasure"
AUDIT_EXPORT = "audit_export"
