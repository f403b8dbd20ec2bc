"""The consents app's models, one module per concern."""

from apps.consents.models.privacy import (
    PrivacyExport,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Suppression,
    SuppressionKey,
)

__all__ = [
    "PrivacyExport",
    "PrivacyRequest",
    "PrivacyRequestKind",
    "PrivacyRequestStatus",
    "Suppression",
    "SuppressionKey",
]
