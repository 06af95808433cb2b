"""Identification: "who is this?" The nearest face decides (docs/consent-rule.md, "Who asks
the rule"; docs/architecture.md, "Face engine and identification").

Each process keeps a match index per school: every template the school holds, as float32
columns with their norms, brought up to date when the school's MatchIndexVersion moves (a
template added or erased): the erased are dropped, the added decrypted, nothing rebuilt. A
busy gate costs one matrix-vector product, not a face detection, when cameras send embeddings.

Among all the school's templates — consenting children's or not — the nearest one within the
school's tolerance names the only candidate. If another child's template is within the
school's margin of it, the camera cannot tell the two apart: no match. If the candidate's
purpose is not active at this instant (checked live through the one consent rule, so a
withdrawal counts for the very next request), no match either — never the next child, who is
almost surely not the one at the camera.

Only a match leaves a trace (a recognition event). A refusal writes nothing, not even an audit
row: it concerns a child the school may not record anything about, or two children neither of
whom was identified, and an audit row per refusal would serialise a busy gate on the audit
chain.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Count, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from consent.compiled import CompiledQuery, run_together
from consent.models import Purpose, School
from consent.rules import is_purpose_active, rule_calls, rule_loaded

from .crypto import child_keys_for_reading
from .models import FaceTemplate, MatchIndexChange, MatchIndexVersion, RecognitionEvent
from .selectors import template_embedding

# float32 distances are exact to about 1e-6 here; candidates are re-measured in float64.
PREFILTER_SLACK = 0.01
# More templates added than this since the index was built: rebuild it rather than add them.
REFRESH_LIMIT = 5000


# The change log (MatchIndexChange) is kept this long; an index that has not looked at it for
# longer (less a margin for clocks) compares every template id instead.
CHANGES_KEPT = timedelta(days=1)
CHANGES_TRUSTED = CHANGES_KEPT - timedelta(hours=1)


@dataclass
class MatchIndex:
    version: str
    template_ids: np.ndarray  # object array of UUIDs
    student_ids: np.ndarray  # object array of UUIDs
    student_codes: np.ndarray  # int64, n: the same child, the same code (compared vectorised)
    columns: np.ndarray  # float32, 128 × n (C order): one column per template
    norms: np.ndarray  # float32, n — squared norms of the columns
    codes: dict = field(default_factory=dict)  # student id → its code in student_codes
    seq: int = 0  # the last MatchIndexChange taken in
    seq_version: str = ""  # its version: the log is the one the index read (not restored)
    checked_at: datetime | None = None  # when the change log was last read for it
    rows: int = 0  # template rows it was made from (crypto-shredded ones included)


@dataclass(frozen=True)
class Nearest:
    """The school's template nearest a probe, within tolerance."""

    student_id: uuid.UUID
    distance: float
    ambiguous: bool  # another child's template is within the margin of `distance`


@dataclass(frozen=True)
class Match:
    student_id: object
    distance: float
    event: RecognitionEvent


_indexes: dict[int, MatchIndex] = {}
_lock = threading.Lock()


def match_index_bump(school_id: int, student_ids: Iterable | None = None) -> None:
    """Call inside the transaction that adds or removes a school's templates, naming the
    children whose templates changed (None: not itemised; every process then compares every
    template id). The version row is written first: it holds the school's changes in commit
    order (MatchIndexChange)."""
    version = uuid.uuid4().hex
    MatchIndexVersion.objects.update_or_create(school_id=school_id, defaults={"version": version})
    now = timezone.now()
    changed = [None] if student_ids is None else sorted(set(student_ids), key=str)
    MatchIndexChange.objects.bulk_create(
        [
            MatchIndexChange(school_id=school_id, student_id=s, version=version, at=now)
            for s in changed
        ]
    )
    MatchIndexChange.objects.filter(school_id=school_id, at__lt=now - CHANGES_KEPT).delete()


def match_index_changes_prune(*, as_of: datetime, dry_run: bool = False) -> int:
    """The change log's rows older than CHANGES_KEPT, deleted (or counted): the events
    job calls this hourly, so a school whose templates stop changing keeps none for longer."""
    old = MatchIndexChange.objects.filter(at__lt=as_of - CHANGES_KEPT)
    return old.count() if dry_run else old.delete()[0]


# Asked before every match (a gate's hundred a second): built once, run many times.
_version_of = CompiledQuery(
    lambda school: MatchIndexVersion.objects.filter(school_id=school).values_list("version"),
    school=MatchIndexVersion._meta.get_field("school"),
)
_template_of = CompiledQuery(
    lambda student: FaceTemplate.objects.filter(student_id=student).values_list("pk")[:1],
    student=FaceTemplate._meta.get_field("student"),
)


def match_index_version(school_id: int) -> str:
    rows = _version_of(school=school_id)
    return rows[0][0] if rows else ""


def _last_change(school_id: int) -> tuple[int, str]:
    last = (
        MatchIndexChange.objects.filter(school_id=school_id)
        .order_by("-id")
        .values_list("id", "version")
        .first()
    )
    return last or (0, "")


def _build(school_id: int, version: str) -> MatchIndex:
    # The log's position first: a change committed while the templates are read is taken in
    # again at the next refresh (taking a change in twice changes nothing).
    (seq, seq_version), checked_at = _last_change(school_id), timezone.now()
    template_ids, student_ids, matrix, rows = _decrypted(
        FaceTemplate.objects.filter(student__school_id=school_id)
    )
    return replace(
        index_of(
            version=version, template_ids=template_ids, student_ids=student_ids, matrix=matrix
        ),
        seq=seq,
        seq_version=seq_version,
        checked_at=checked_at,
        rows=rows,
    )


def _decrypted(templates) -> tuple[list, list, np.ndarray, int]:
    """The templates' ids, their children's, their numbers (n × 128 float32), and how many
    rows there were; templates of crypto-shredded children are left out. Read in chunks into
    one float32 array, so building an index never holds every row as a model and a float64
    copy at once."""
    pairs = list(templates.values_list("id", "student_id"))
    keys = child_keys_for_reading([student_id for _, student_id in pairs])
    matrix = np.empty((len(pairs), 128), dtype=np.float32)
    template_ids: list[uuid.UUID] = []
    student_ids: list[uuid.UUID] = []
    rows = 0
    for template in templates.only("id", "student_id", "ciphertext").iterator(chunk_size=2000):
        rows += 1
        key = keys.get(template.student_id)
        if key is None:
            continue  # crypto-shredded
        matrix[len(template_ids)] = template_embedding(template, key=key)
        template_ids.append(template.pk)
        student_ids.append(template.student_id)
    return template_ids, student_ids, matrix[: len(template_ids)], rows


def _refreshed(
    index: MatchIndex, school_id: int, version: str, *, count: bool = False
) -> MatchIndex:
    """The index brought to `version` by what changed, not rebuilt: the children named in the
    change log since the index last read it have their columns dropped (their numbers leave
    this process's memory) and their templates as they are now decrypted and added; the rest
    are kept as they are (a template never changes). A few rows of the log instead of every
    template id of the school: at 100,000 templates that took each process holding the index
    ≈ 0.5–0.9 s of CPU per erasure batch, the log ≈ 45 ms (bench/index_refresh.py). Every
    template id is compared instead when a change is not itemised, when the log is not the one
    the index read (pruned past it, or a database restored behind it), and with `count` (the
    erasure's proof: the rows there are now, whatever was logged) when the school's template
    rows, counted in the same statement as the log is read, are not as many as the index now
    stands for. Templates are deleted only by the erasure's database step, which logs them; a
    gate's index is not counted on every refresh (100,000 rows per erasure per process)."""
    checked_at = timezone.now()
    if index.checked_at is None or checked_at - index.checked_at > CHANGES_TRUSTED:
        return _compared(index, school_id, version, checked_at)
    rows = Subquery(
        FaceTemplate.objects.filter(student__school_id=school_id)
        .order_by()
        .values("student__school_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    log = list(
        MatchIndexChange.objects.filter(school_id=school_id, id__gte=index.seq)
        .annotate(rows=Coalesce(rows, 0) if count else Value(0))
        .order_by("id")
        .values_list("id", "student_id", "version", "rows")
    )
    counted = log[0][3] if log else (_rows(school_id) if count else 0)
    if index.seq:
        if not log or log[0][0] != index.seq or log[0][2] != index.seq_version:
            return _compared(index, school_id, version, checked_at)
        log = log[1:]
    if any(student_id is None for _, student_id, _, _ in log):
        return _compared(index, school_id, version, checked_at)
    refreshed = _logged(index, school_id, log, version=version, checked_at=checked_at)
    if count and refreshed.rows != counted:
        return _compared(index, school_id, version, checked_at)
    return refreshed


def _rows(school_id: int) -> int:
    return FaceTemplate.objects.filter(student__school_id=school_id).count()


def _logged(index: MatchIndex, school_id: int, changes: list, **fields) -> MatchIndex:
    """The index with the logged changes taken in: the children named lose their columns and
    get their templates as they are now."""
    if not changes:
        return replace(index, **fields)
    seq, _, seq_version, _ = changes[-1]
    students = {change[1] for change in changes}
    codes = [index.codes[s] for s in students if s in index.codes]
    keep = ~np.isin(index.student_codes, codes) if codes else np.ones(len(index.norms), bool)
    new_ids, student_ids, matrix, rows = _decrypted(
        FaceTemplate.objects.filter(student_id__in=students, student__school_id=school_id)
    )
    if len(new_ids) > REFRESH_LIMIT:  # a school enrolled at once: build it afresh
        return _build(school_id, fields["version"])
    shredded = index.rows - len(index.template_ids)  # rows the index holds no numbers for
    return _with(
        index,
        keep,
        (new_ids, student_ids, matrix),
        seq=seq,
        seq_version=seq_version,
        rows=int(keep.sum()) + shredded + rows,
        **fields,
    )


def _compared(index: MatchIndex, school_id: int, version: str, checked_at: datetime) -> MatchIndex:
    """Brought up to date by comparing every template id of the school with the index's:
    the erased dropped, the added decrypted."""
    seq, seq_version = _last_change(school_id)  # first: what commits meanwhile comes again
    held = set(
        FaceTemplate.objects.filter(student__school_id=school_id).values_list("id", flat=True)
    )
    keep = np.fromiter(
        (t in held for t in index.template_ids), dtype=bool, count=len(index.template_ids)
    )
    known = set(index.template_ids[keep])
    added = [t for t in held if t not in known]
    if len(added) > REFRESH_LIMIT:  # a school enrolled at once: build it afresh
        return _build(school_id, version)
    new = _decrypted(FaceTemplate.objects.filter(pk__in=added))[:3] if added else ([], [], None)
    return _with(
        index,
        keep,
        new,
        version=version,
        seq=seq,
        seq_version=seq_version,
        checked_at=checked_at,
        rows=len(held),
    )


def _with(index: MatchIndex, keep: np.ndarray, new: tuple, **fields) -> MatchIndex:
    """The index less the columns `keep` leaves out, plus the new templates."""
    new_ids, student_ids, matrix = new
    if not len(new_ids):
        if keep.all():
            return replace(index, **fields)
        kept_codes = index.student_codes[keep]
        still = set(np.intersect1d(index.student_codes[~keep], kept_codes).tolist())
        codes = dict(index.codes)
        for student_id in set(index.student_ids[~keep].tolist()):
            if codes[student_id] not in still:  # none of its templates left
                del codes[student_id]
        return MatchIndex(
            template_ids=index.template_ids[keep],
            student_ids=index.student_ids[keep],
            student_codes=kept_codes,
            columns=_columns_kept(index.columns, keep),
            norms=index.norms[keep],
            codes=codes,
            **fields,
        )
    return replace(
        index_of(
            version=fields.pop("version"),
            template_ids=[*index.template_ids[keep], *new_ids],
            student_ids=[*index.student_ids[keep], *student_ids],
            matrix=np.concatenate([_columns_kept(index.columns, keep).T, matrix]),
        ),
        **fields,
    )


def _columns_kept(columns: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`columns[:, keep]` as a new C-ordered array. A few columns dropped (an erasure batch):
    copied as the runs between them, row by row, at memory speed (≈ 15 ms for 100,000
    templates, where the boolean gather and its reordering took ≈ 250 ms)."""
    gone = np.flatnonzero(~keep)
    if len(gone) > 1000:
        return np.ascontiguousarray(columns[:, keep])
    out = np.empty((columns.shape[0], columns.shape[1] - len(gone)), dtype=columns.dtype)
    start = filled = 0
    for end in [*gone.tolist(), columns.shape[1]]:
        out[:, filled : filled + end - start] = columns[:, start:end]
        filled += end - start
        start = end + 1
    return out


def match_index_for(school_id: int) -> MatchIndex:
    version = match_index_version(school_id)
    index = _indexes.get(school_id)
    if index is not None and index.version == version:
        return index
    with _lock:
        index = _indexes.get(school_id)
        if index is None:
            index = _indexes[school_id] = _build(school_id, version)
        elif index.version != version:
            index = _indexes[school_id] = _refreshed(index, school_id, version)
    return index


def match_index_now(school_id: int) -> MatchIndex:
    """The school's index with exactly the template rows there are now, whatever the version
    says (the erasure's proof probes it): this process's index brought up to date by what
    changed, or built."""
    version = match_index_version(school_id)
    with _lock:
        index = _indexes.get(school_id)
        if index is None:
            index = _indexes[school_id] = _build(school_id, version)
        else:  # its rows counted by the refresh, whether the version moved or not
            index = _indexes[school_id] = _refreshed(index, school_id, version, count=True)
    return index


def match_index_drop_erased(school_id: int, student_ids) -> None:
    """If this process's index of the school still holds any of these children's templates,
    bring it up to date now: their numbers leave its memory at once (other processes do so
    before their next match, when they see the version moved)."""
    index = _indexes.get(school_id)
    if index is not None and any(s in index.codes for s in student_ids):
        match_index_now(school_id)


def _within(
    index: MatchIndex, embedding: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """The index positions of the templates within `radius` of the probe, and their exact
    distances (float64), in index order."""
    probe = embedding.astype(np.float32)
    # |a-b|² = |a|² + |b|² - 2a·b : one matrix-vector product over all templates, by BLAS on
    # one thread (portal/__init__.py): 2–4 ms at 100,000 templates against 2.4–6.5 ms for
    # numpy's own loop (einsum), and against 8 ms for OpenBLAS's threads on a busy 2-core machine.
    squared = index.norms + float(probe @ probe) - 2.0 * (probe @ index.columns)
    near = np.flatnonzero(squared <= (radius + PREFILTER_SLACK) ** 2)
    if not len(near):
        return near, np.empty(0)
    exact = np.linalg.norm(index.columns[:, near].T.astype(np.float64) - embedding, axis=1)
    return near, exact


def nearest(
    index: MatchIndex, embedding: np.ndarray, *, tolerance: float, margin: float
) -> Nearest | None:
    """The nearest template within `tolerance`, or None; ambiguous when another child's
    template lies within `margin` of it (whether or not that one is within tolerance)."""
    if not len(index.template_ids):
        return None
    near, exact = _within(index, embedding, tolerance + margin)
    if not len(near):
        return None
    first = int(np.argmin(exact))
    distance = float(exact[first])
    if distance > tolerance:
        return None
    others = exact[index.student_codes[near] != index.student_codes[near[first]]]
    return Nearest(
        student_id=index.student_ids[near[first]],
        distance=distance,
        ambiguous=bool(len(others)) and float(others.min()) - distance <= margin,
    )


def children_within(
    index: MatchIndex, embedding: np.ndarray, *, tolerance: float
) -> dict[uuid.UUID, float]:
    """Every child with a template within `tolerance` of the probe, with its nearest distance
    (the erasure's proof asks it of a former face: the child must be absent)."""
    if not len(index.template_ids):
        return {}
    near, exact = _within(index, embedding, tolerance)
    found: dict[uuid.UUID, float] = {}
    for position, distance in zip(near, exact, strict=True):
        if distance <= tolerance:
            student_id = index.student_ids[position]
            found[student_id] = min(float(distance), found.get(student_id, float(distance)))
    return found


def index_of(
    *, version: str, template_ids: list, student_ids: list, matrix: np.ndarray
) -> MatchIndex:
    """A match index over these templates (`matrix`: n × 128 float32 rows)."""
    codes: dict = {}
    return MatchIndex(
        codes=codes,
        rows=len(template_ids),
        version=version,
        template_ids=np.asarray(template_ids, dtype=object),
        student_ids=np.asarray(student_ids, dtype=object),
        student_codes=np.asarray(
            [codes.setdefault(s, len(codes)) for s in student_ids], dtype=np.int64
        ),
        # Stored 128 × n: the probe-times-matrix product streams it row by row, about twice
        # as fast as n × 128 rows at 100,000 templates on this 2-core machine.
        columns=np.ascontiguousarray(matrix.T),
        norms=np.einsum("ij,ij->i", matrix, matrix),
    )


def identify(
    *, school: School, purpose: Purpose, embedding: np.ndarray, device: str
) -> Match | None:
    """The child at the camera if `purpose` is active for them now, else None.

    1. The nearest of all the school's templates within the school's tolerance names the one
       candidate; none within tolerance → None.
    2. Another child's template within the school's margin of it → None (ambiguous).
    3. The candidate's purpose must be active at this instant, and a template of theirs still
       held (not erased since the index was built); otherwise None — never the next child.
    4. A match is recorded as a recognition event; None records nothing about anyone.

    The index must be the school's current one (its version, read from the database). This
    process's copy is searched first and its version read in the same round trip as the
    candidate's rule rows and template check; if the version has moved meanwhile, the index is
    brought up to date and searched again, so the answer always comes from a current index.
    """
    kept = _indexes.get(school.pk)
    while True:  # twice at most: an index match_index_for just read is current
        current = kept is None
        # match_index_for reads the version, then builds or brings the index up to date.
        index = match_index_for(school.pk) if kept is None else kept
        found = nearest(
            index, embedding, tolerance=school.face_tolerance, margin=school.face_match_margin
        )
        candidate = None if found is None or found.ambiguous else found.student_id
        calls: list[tuple[CompiledQuery, dict]] = (
            [] if current else [(_version_of, {"school": school.pk})]
        )
        if candidate is not None:
            # The rule's rows and the template check (consent.compiled): one round trip.
            calls += [
                *rule_calls(candidate, every_column=False),
                (_template_of, {"student": candidate}),
            ]
        rows = run_together(*calls) if calls else []
        if not current:
            version, *rows = rows
            if (version[0][0] if version else "") != index.version:
                kept = None  # moved since this process's copy: bring it up to date, ask again
                continue
        break
    if found is None or candidate is None:
        return None
    now = timezone.now()
    *rule_rows, template = rows
    student = rule_loaded(rule_rows, every_column=False)
    if student is None or not is_purpose_active(student, purpose.code, at=now):
        return None
    if not template:
        return None
    # One INSERT, atomic on its own: no BEGIN and COMMIT round trips for a busy gate.
    event = RecognitionEvent.objects.create(
        student=student, purpose=purpose, device=device[:100], distance=found.distance, at=now
    )
    return Match(student_id=found.student_id, distance=found.distance, event=event)
