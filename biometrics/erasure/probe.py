"""The proof at erasure time: the child's former faces against the live match index.

Before the database step deletes a child's template rows, it decrypts them (the key still
exists) and keeps the faces in memory only. After the rows are gone it probes each face against
the school's match index as any process builds it now — every template row left, decrypted —
with identification's own distance function (`biometrics.matching.children_within`). The child must
match nowhere; look-alikes (other children within tolerance) are reported, not failed.

The index probed is the worker's own match index brought up to date with the rows there are
now (`biometrics.matching.match_index_now`): only templates added since are decrypted, those
deleted are dropped; rebuilding a school's index would decrypt all of its templates.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import numpy as np
from django.utils import timezone

from ..crypto import child_keys_for_reading
from ..matching import MatchIndex, children_within, match_index_now
from ..models import ErasureStep, FaceTemplate
from ..selectors import template_embedding


def former_faces(student_ids: list) -> dict[uuid.UUID, list[np.ndarray]]:
    """The children's template embeddings, decrypted before their rows go: kept in memory
    only, for the probe (a key destroyed already leaves nothing to probe)."""
    keys = child_keys_for_reading(student_ids)
    faces: dict[uuid.UUID, list[np.ndarray]] = defaultdict(list)
    templates = FaceTemplate.objects.filter(student_id__in=student_ids).only(
        "id", "student_id", "ciphertext"
    )
    for template in templates:
        key = keys.get(template.student_id)
        if key is not None:
            faces[template.student_id].append(template_embedding(template, key=key))
    return faces


def live_index(school_id: int) -> MatchIndex:
    """The school's match index from the template rows there are now."""
    return match_index_now(school_id)


def probe_former_faces(steps: list[ErasureStep], faces: dict[uuid.UUID, list[np.ndarray]]) -> dict:
    """Each child's former faces against its school's live index: {student id: figures}."""
    figures = {}
    for school_id in sorted({s.request.school_id for s in steps}):
        index = live_index(school_id)
        tolerance = next(
            s for s in steps if s.request.school_id == school_id
        ).request.school.face_tolerance
        in_index = index.codes  # the children it holds templates of
        for step in (s for s in steps if s.request.school_id == school_id):
            student_id = step.request.student_id
            if student_id is None:
                continue
            found = [
                children_within(index, face, tolerance=tolerance)
                for face in faces.get(student_id, [])
            ]
            figures[student_id] = {
                "match_index_templates": len(index.template_ids),
                "templates_probed": len(found),
                "matches_to_the_child": sum(1 for near in found if student_id in near)
                + int(student_id in in_index),
                "other_children_within_tolerance": max((len(near) for near in found), default=0),
                "tolerance": tolerance,
                "probed_at": timezone.now().isoformat(),
            }
    return figures
