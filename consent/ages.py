"""A child's age, as the consent rule and the child's own sign-in read it (SPEC §2 rule 5).

- The **competence age** (per school, 12 to 16, default 12): from then on a child may sign in
  to their own page, see what is held and refuse or lift their refusal themselves. Scotland
  presumes a child of 12 understands (Age of Legal Capacity (Scotland) Act 1991 s.2(4A)); a
  school under PIPL sets 14, below which a child's data needs a parent's consent (Art 31).
- **Adulthood** (18): from the 18th birthday only the student's own grant counts (PoFA s.26
  covers children, i.e. under-18s; Illinois asks the student at 18).

A birthday starts at midnight in the portal's time zone (TIME_ZONE). Someone born on 29
February reaches an age on 1 March in a year without one.
"""

from __future__ import annotations

from datetime import date, datetime, time

from django.utils import timezone

ADULT_AGE = 18


def birthday(date_of_birth: date, years: int) -> date:
    """The day someone born on `date_of_birth` reaches `years`."""
    try:
        return date_of_birth.replace(year=date_of_birth.year + years)
    except ValueError:  # 29 February, in a year without one
        return date(date_of_birth.year + years, 3, 1)


def birthday_starts(date_of_birth: date, years: int) -> datetime:
    """The instant someone reaches `years`: midnight of that birthday, in the local time zone."""
    return timezone.make_aware(datetime.combine(birthday(date_of_birth, years), time.min))


def has_reached(date_of_birth: date | None, years: int, at: datetime) -> bool:
    """Whether someone born on `date_of_birth` is `years` old or more at `at` (an unknown date
    of birth: no)."""
    return date_of_birth is not None and at >= birthday_starts(date_of_birth, years)


def is_adult(student, at: datetime) -> bool:
    return has_reached(student.date_of_birth, ADULT_AGE, at)


def is_competent(student, at: datetime) -> bool:
    """At or above the school's competence age at `at` (an unknown date of birth: no)."""
    return has_reached(student.date_of_birth, student.school.competence_age, at)


def adult_since(student) -> datetime | None:
    """The instant the student turned (or turns) 18, if the date of birth is known."""
    if student.date_of_birth is None:
        return None
    return birthday_starts(student.date_of_birth, ADULT_AGE)
