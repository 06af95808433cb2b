"""Every write of the consent app is one of these services (admin, API, commands, the roster
and the seed all call them). Each owns its transaction, writes its audit row inside it and
stores the consent statuses of the children whose rule inputs it changed.

Callers import them from here; the modules are by entity: decisions (and leaving), people
(children, guardians, links), notices (the school's written notice going out), notifications
(the record that it reached a guardian), schools (policy, purposes, notices, DPIA sign-offs),
staff.
"""

from ..errors import NOT_YOUR_CHILD, PURPOSE_UNKNOWN, STALE_NOTICE, ConsentError
from .decisions import (
    DecisionOutcome,
    age_check,
    child_refusal_by_child,
    child_refusal_record,
    child_refusal_standing,
    consent_decide,
    student_decide,
    student_leave,
)
from .notices import (
    NOTICE_TASK,
    NOTICE_WATCHDOG_TASK,
    notice_deliveries_enqueue,
    notice_deliveries_send,
    notice_delivery_open,
    notice_resend_unreached,
    notice_watchdog,
)
from .notifications import (
    notification_delete,
    notification_exception_delete,
    notification_exception_record,
    notification_exception_update,
    notification_record,
    notification_update,
)
from .people import (
    GUARDIAN_EMAIL_IS_THEIRS,
    GUARDIAN_EXISTS,
    guardian_create,
    guardian_delete,
    guardian_get_or_create,
    guardian_link_by_email,
    guardian_update,
    guardianship_link,
    guardianship_unlink,
    guardianship_update,
    student_create,
    student_update,
)
from .schools import (
    dpia_sign_off,
    purpose_create,
    purpose_delete,
    purpose_disable,
    purpose_update,
    school_create,
    school_delete,
    school_policy_update,
)
from .staff import (
    EMAIL_IS_A_GUARDIANS,
    ROLE_GROUPS,
    staff_member_add,
    staff_membership_create,
    staff_membership_delete,
    staff_membership_update,
    staff_set_password_token,
)
from .texts import (
    notice_publish,
    notice_text_add,
    notice_texts_problems,
    purpose_text_delete,
    purpose_text_set,
)

__all__ = [
    "EMAIL_IS_A_GUARDIANS",
    "GUARDIAN_EMAIL_IS_THEIRS",
    "GUARDIAN_EXISTS",
    "NOTICE_TASK",
    "NOTICE_WATCHDOG_TASK",
    "NOT_YOUR_CHILD",
    "PURPOSE_UNKNOWN",
    "ROLE_GROUPS",
    "STALE_NOTICE",
    "ConsentError",
    "DecisionOutcome",
    "age_check",
    "child_refusal_by_child",
    "child_refusal_record",
    "child_refusal_standing",
    "consent_decide",
    "dpia_sign_off",
    "guardian_create",
    "guardian_delete",
    "guardian_get_or_create",
    "guardian_link_by_email",
    "guardian_update",
    "guardianship_link",
    "guardianship_unlink",
    "guardianship_update",
    "notice_deliveries_enqueue",
    "notice_deliveries_send",
    "notice_delivery_open",
    "notice_publish",
    "notice_resend_unreached",
    "notice_text_add",
    "notice_texts_problems",
    "notice_watchdog",
    "notification_delete",
    "notification_exception_delete",
    "notification_exception_record",
    "notification_exception_update",
    "notification_record",
    "notification_update",
    "purpose_create",
    "purpose_delete",
    "purpose_disable",
    "purpose_text_delete",
    "purpose_text_set",
    "purpose_update",
    "school_create",
    "school_delete",
    "school_policy_update",
    "staff_member_add",
    "staff_membership_create",
    "staff_membership_delete",
    "staff_membership_update",
    "staff_set_password_token",
    "student_create",
    "student_decide",
    "student_leave",
    "student_update",
]
