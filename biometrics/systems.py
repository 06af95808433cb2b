"""The systems that can hold a child's biometric data: one catalogue.

The erasure plan, the deletion receipt, the consent receipt's storage locations and the
parent's view of what is held all name systems from here, so a system is described once.
Built in: the portal's database, its photo storage, the match cache of the identification
processes, and the key store (whose key, once destroyed, makes every other copy unreadable).
Holders configured in admin (gate controllers, tills, vendors' servers) are `http` systems
named after their configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


@dataclass(frozen=True)
class System:
    kind: str  # database | media | cache | http | key
    name: str  # as stored on erasure steps and printed in receipts (English, stable)
    label: str | Promise  # as shown to a parent, in their language
    # What a parent is told it holds: list items (not counts, so no measure word in Chinese).
    holds: tuple[str | Promise, ...]
    erased: tuple[str, ...]  # what a deletion receipt says was erased there
    verification: str  # how an erasure there is verified, for the receipt

    def row(self, items: int, **extra: int) -> dict:
        """The system as a row of the held-data document: `name` stays the stable English name
        (what programs match on), `label` and `holds` are words in the active language."""
        return {
            "name": self.name,
            "kind": self.kind,
            "label": str(self.label),
            "holds": [str(words) for words in self.holds],
            "items": items,
            **extra,
        }


PORTAL_DB = System(
    kind="database",
    name="Guardian portal database",
    label=_("Guardian portal database"),
    holds=(
        pgettext_lazy("held in a system", "photo records"),
        pgettext_lazy("held in a system", "templates"),
        pgettext_lazy("held in a system", "recognition events"),
    ),
    erased=("photo records", "face templates", "recognition events"),
    verification="no photo, template or recognition event rows left for the child, so "
    "identification can no longer answer with the child",
)
PHOTO_STORAGE = System(
    kind="media",
    name="Photo storage",
    label=_("Photo storage"),
    holds=(pgettext_lazy("held in a system", "photos"),),
    erased=("photos",),
    verification="the child's photo folder lists no files",
)
MATCH_CACHE = System(
    kind="cache",
    name="Match cache",
    label=_("Match cache"),
    holds=(
        pgettext_lazy("held in a system", "templates (in the memory of the matching processes)"),
    ),
    erased=("match index entries",),
    verification="the match index version moved, so every matching process reloads its "
    "index before its next match, and no template row of the child is left to load",
)
KEY_STORE = System(
    kind="key",
    name="Child's data key",
    label=_("Child's data key"),
    holds=(),
    erased=("the child's data key (crypto-shredding)",),
    verification="the child's data key is destroyed: its ciphertext can no longer be decrypted",
)
HOLDER = System(
    kind="http",
    name="",  # each holder is named in its configuration
    label="",
    # A holder may keep a trail of its recognitions too (an erasure there erases it).
    holds=(
        pgettext_lazy("held in a system", "templates"),
        pgettext_lazy("held in a system", "recognition events"),
    ),
    erased=("face template copies", "recognition events held there"),
    verification="the holder answered 404 to GET /subjects/{subject} after erasing",
)


def holder_system(name: str, label: str = "") -> System:
    """A holder configured in admin, as a system: `name` as configured (stable, in receipts and
    erasure steps), `label` in the reader's language (`Holder.label`; the name if none)."""
    return replace(HOLDER, name=name, label=label or name)


BY_KIND = {
    system.kind: system for system in (PORTAL_DB, PHOTO_STORAGE, MATCH_CACHE, HOLDER, KEY_STORE)
}
# Systems of the apps above biometrics (the portal's downloads), added when those apps are
# ready (biometrics.erasure.erasure_store_register).
_REGISTERED: dict[str, System] = {}


def system_register(system: System) -> None:
    if system.kind in BY_KIND:
        raise ValueError(f"{system.kind!r} is one of biometrics' own systems")
    _REGISTERED[system.kind] = system


def system_for(kind: str) -> System:
    """The system behind an erasure step's kind: built in, or registered by an app above."""
    return BY_KIND.get(kind) or _REGISTERED[kind]


#: Where a consent decision's data is stored before any holder receives a copy.
STORAGE_LOCATIONS = (PORTAL_DB.name, PHOTO_STORAGE.name)
