from .audit import AuditChainHead, AuditEvent
from .decisions import ConsentDecision, Decision, Method
from .people import (
    Guardian,
    Guardianship,
    Notification,
    NotificationException,
    Student,
    StudentStatus,
)
from .schools import Notice, Purpose, School, StaffMembership

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "ConsentDecision",
    "Decision",
    "Guardian",
    "Guardianship",
    "Method",
    "Notice",
    "Notification",
    "NotificationException",
    "Purpose",
    "School",
    "StaffMembership",
    "Student",
    "StudentStatus",
]
