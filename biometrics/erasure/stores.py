"""Stores above biometrics that hold copies of a child's data, and how an erasure reaches them.

The portal keeps a parent's download packages (sealed files in storage, rows in its database):
a copy of photos and templates that an erasure must remove too. biometrics cannot import the
portal, so the portal registers its store here when its app is ready (`erasure_store_register`),
and every erasure opened from then on has a step for it, named in the receipt like any system.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..systems import System, system_register

#: {student id: items erased} for the children whose copies are gone (verified), and
#: {student id: the error} for those that are not.
StoreOutcome = tuple[dict[uuid.UUID, int], dict[uuid.UUID, Exception]]


@dataclass(frozen=True)
class ErasureStore:
    """A store that holds copies of children's data outside biometrics' own.

    `erase(student_ids)` removes every copy of those children it holds and checks that none is
    left; it is idempotent (a second call finds nothing and verifies again).
    """

    system: System
    erase: Callable[[list[uuid.UUID]], StoreOutcome]


_STORES: dict[str, ErasureStore] = {}


def erasure_store_register(store: ErasureStore) -> None:
    """Add a store to every erasure opened from now on (kind = its system's kind). Registering
    the same kind again replaces it (an app's ready() may run twice in tests)."""
    system_register(store.system)
    _STORES[store.system.kind] = store


def erasure_stores() -> list[ErasureStore]:
    return list(_STORES.values())


def erasure_store(kind: str) -> ErasureStore | None:
    return _STORES.get(kind)
