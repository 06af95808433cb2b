"""What the consent services refuse, as codes (for the API) and sentences (for people)."""

STALE_NOTICE = (
    "This notice version is not the current one; read the current notice and decide again."
)
NOT_YOUR_CHILD = "Only a guardian with parental responsibility may decide for this child."
PURPOSE_UNKNOWN = "This school has no such purpose."


class ConsentError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


ADULT_STUDENT = (
    "The student is an adult now: only their own consent counts, given on their own page."
)
NOT_ADULT = "Only a student of 18 or over gives their own consent; below that, a parent does."
BELOW_COMPETENCE_AGE = "The child is below the school's competence age."
NO_DATE_OF_BIRTH = "The child's date of birth is not known, so their age cannot be checked."
