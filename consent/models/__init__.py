from .audit import AuditChainHead, AuditEvent
from .decisions import ConsentDecision, Decision, Method
from .notices import NoticeDelivery
from .people import (
    Guardian,
    Guardianship,
    Notification,
    NotificationException,
    NotificationMethod,
    RetiredSubject,
    Student,
    StudentStatus,
)
from .schools import (
    DpiaSignOff,
    Notice,
    NoticeText,
    Purpose,
    PurposeText,
    School,
    StaffMembership,
)
from .status import ConsentStatus, RosterImport

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "ConsentDecision",
    "ConsentStatus",
    "Decision",
    "DpiaSignOff",
    "Guardian",
    "Guardianship",
    "Method",
    "Notice",
    "NoticeDelivery",
    "NoticeText",
    "Notification",
    "NotificationException",
    "NotificationMethod",
    "Purpose",
    "PurposeText",
    "RetiredSubject",
    "RosterImport",
    "School",
    "StaffMembership",
    "Student",
    "StudentStatus",
]
