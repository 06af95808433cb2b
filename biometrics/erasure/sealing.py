"""Sealing finished erasures: verified, receipted, signed, audited, announced."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from consent.actors import Actor
from consent.audit import AuditEntry, audit_record_many

from ..models import ErasureRequest, ErasureStatus, ErasureStep
from ..receipts import erasure_receipt_build, erasure_receipt_sign
from ..signals import erasure_sealed


def erasure_seal_many(request_ids: Iterable[uuid.UUID]) -> int:
    """Mark requests whose steps are all verified as verified, sign their receipts, write
    their audit events, and announce them after commit (the portal emails the parents). Once
    only: rows are locked, and a request another worker is sealing is skipped (the watchdog
    seals any left behind). Returns how many were sealed now."""
    with transaction.atomic():
        requests = list(
            ErasureRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(request_ids))
            .exclude(status=ErasureStatus.VERIFIED)
            .select_related("school")
            .order_by("pk")
        )
        steps = defaultdict(list)
        for step in ErasureStep.objects.filter(request__in=requests).order_by("id"):
            steps[step.request_id].append(step)
        requests = [
            r for r in requests if all(s.status == ErasureStatus.VERIFIED for s in steps[r.pk])
        ]
        if not requests:
            return 0
        now = timezone.now()
        events = []
        for request in requests:
            request.status = ErasureStatus.VERIFIED
            request.completed_at = now
            request.receipt = erasure_receipt_build(request, steps=steps[request.pk])
            request.receipt_signature = erasure_receipt_sign(request.receipt)
            events.append(
                AuditEntry(
                    "erasure.verified",
                    actor=Actor.system("erasure worker"),
                    school_id=request.school_id,
                    subject=request.subject_id,
                    data={
                        "erasure": str(request.pk),
                        "systems": [
                            {"system": s.system, "items": s.items_erased, "at": s.verified_at}
                            for s in steps[request.pk]
                        ],
                    },
                )
            )
        ErasureRequest.objects.bulk_update(
            requests, ["status", "completed_at", "receipt", "receipt_signature"]
        )
        audit_record_many(events)
        transaction.on_commit(lambda: erasure_sealed.send(sender=ErasureRequest, requests=requests))
    return len(requests)
