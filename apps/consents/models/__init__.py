"""The consents app's models, one module per concern."""

from apps.consents.models.compliance import ComplianceAction, ComplianceRule
from apps.consents.models.consents import (
    ConsentChange,
    ConsentChannel,
    ConsentDefault,
    ConsentType,
    ProfileConsent,
)
from apps.consents.models.privacy import (
    PrivacyExport,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    Suppression,
    SuppressionKey,
)

__all__ = [
    "ComplianceAction",
    "ComplianceRule",
    "ConsentChange",
    "ConsentChannel",
    "ConsentDefault",
    "ConsentType",
    "PrivacyExport",
    "PrivacyRequest",
    "PrivacyRequestKind",
    "PrivacyRequestStatus",
    "ProfileConsent",
    "Suppression",
    "SuppressionKey",
]
