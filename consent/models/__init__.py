from .audit import AuditChainHead, AuditEvent
from .decisions import ConsentDecision, Decision, Method
from .people import (
    Guardian,
    Guardianship,
    Notification,
    NotificationException,
    RetiredSubject,
    Student,
    StudentStatus,
)
from .schools import Notice, Purpose, School, StaffMembership
from .status import ConsentStatus, RosterImport

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "ConsentDecision",
    "ConsentStatus",
    "Decision",
    "Guardian",
    "Guardianship",
    "Method",
    "Notice",
    "Notification",
    "NotificationException",
    "Purpose",
    "RetiredSubject",
    "RosterImport",
    "School",
    "StaffMembership",
    "Student",
    "StudentStatus",
]
