"""Who did something, in the form the audit trail and access log record it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    kind: str  # guardian / child / staff / api_key / system / public
    id: str = ""
    label: str = ""

    @classmethod
    def guardian(cls, guardian) -> Actor:
        return cls("guardian", str(guardian.pk), guardian.name)

    @classmethod
    def child(cls, student) -> Actor:
        """The child (or the adult student) acting on their own page: named by their
        pseudonym only, never their name."""
        return cls("child", str(student.subject_id), "")

    @classmethod
    def staff(cls, user) -> Actor:
        return cls("staff", str(user.pk), user.get_full_name() or user.get_username())

    @classmethod
    def api_key(cls, key) -> Actor:
        return cls("api_key", str(key.pk), f"API key {key.name or key.prefix}")

    @classmethod
    def system(cls, job: str = "") -> Actor:
        return cls("system", "", job or "Guardian")


SYSTEM = Actor.system()
