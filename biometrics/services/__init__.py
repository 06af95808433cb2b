"""Writes for biometric data, each with its audit rows: enrolment, templates and their copies
(`enrolment`), erasures a parent asks for or staff re-drive (`erasures`), the holders
(`holders`)."""

from .enrolment import (
    NO_ACTIVE_CONSENT,
    PHOTO_TASK,
    NoActiveConsent,
    photo_enrol,
    photo_process,
    template_copy_push,
    template_create,
)
from .erasures import erasure_request_by_parent, erasure_retry
from .holders import holder_create, holder_delete, holder_update

__all__ = [
    "NO_ACTIVE_CONSENT",
    "PHOTO_TASK",
    "NoActiveConsent",
    "erasure_request_by_parent",
    "erasure_retry",
    "holder_create",
    "holder_delete",
    "holder_update",
    "photo_enrol",
    "photo_process",
    "template_copy_push",
    "template_create",
]
