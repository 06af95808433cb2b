"""What bench/load.py loads the stack with (imported after Django is set up).

One school, one purpose (gate_access) with a notice, two holders. Children through the services
(as the portal does) where the scenario needs their consent; the bulk of the 100,000 templates
through `faces.populate` (bulk inserts of encrypted random templates, no face detection).
"""

from __future__ import annotations

import random
import time

import faces
import harness
import numpy as np
from load_stack import HOLDERS

PURPOSE = "gate_access"
NOISE = 0.01  # a probe is a known template plus this much noise per number (≈ 0.11 away)


class Seeder:
    def __init__(self, holders):
        from biometrics.models import Holder

        self.school, purposes = harness.school_create("bench-load", "Load Primary", [PURPOSE])
        self.purpose = purposes[PURPOSE]
        for name, proc in zip(HOLDERS, holders, strict=True):
            Holder.objects.create(
                school=self.school, name=name, base_url=proc.info["url"], secret=proc.info["secret"]
            )
        self.rng = np.random.default_rng(1717)
        self.made = 0

    def child(self, prefix: str, i: int):
        """A parent with one child: linked and notified, consent granted, one template (its
        copies queued to both holders). Returns (guardian, child, embedding)."""
        from django.db import transaction

        from biometrics.services import template_create
        from consent.services import guardian_get_or_create

        guardian = guardian_get_or_create(
            email=f"parent.{prefix}{i}@bench.example", name=f"Parent {prefix}{i}"
        )
        child = harness.child_with_consent(
            self.school, guardian, [self.purpose], external_id=f"{prefix}-{i:05d}", name=f"C {i}"
        )
        embedding = self.rng.normal(0, 0.12, 128)
        with transaction.atomic():
            template_create(student=child, photo=None, embedding=embedding)
        self.made += 1
        return guardian, child, embedding

    def cohort(self, prefix: str, n: int, label: str, started: float) -> list:
        out = []
        for i in range(n):
            out.append(self.child(prefix, i))
            if (i + 1) % 250 == 0:
                print(f"  {label}: {i + 1}/{n} ({time.perf_counter() - started:.0f}s)", flush=True)
        return out

    def withdrawers(self, prefix: str, n: int, started: float) -> list[list[str]]:
        """n parents with a bearer token each: [child id, token]."""
        from portal.auth import api_token_issue

        rows = []
        for guardian, child, _ in self.cohort(prefix, n, f"withdrawers {prefix}", started):
            token, _ = api_token_issue(guardian=guardian)
            rows.append([str(child.pk), token])
        return rows

    def evening(self, n: int, events: int, started: float) -> tuple[list, list]:
        """n parents signed in (a session each), their children with `events` recognition
        events between them. Returns ([child id, session id], ...) and the children's probe
        embeddings (the morning's gates recognise these children)."""
        from django.conf import settings
        from django.test import Client

        families = self.cohort("E", n, "evening parents", started)
        sessions, probes = [], []
        rng = random.Random(17)
        per_child = events // max(1, n)
        for guardian, child, embedding in families:
            client = Client()
            client.force_login(guardian.user)
            sessions.append([str(child.pk), client.cookies[settings.SESSION_COOKIE_NAME].value])
            probes.append([str(child.pk), embedding.tolist()])
            if per_child:
                harness.add_events(child, [self.purpose], per_child, rng)
        return sessions, probes

    def templates(self, total: int) -> None:
        """Bulk templates (children without consent) until the school holds `total`."""
        from biometrics.models import FaceTemplate

        have = FaceTemplate.objects.filter(student__school=self.school).count()
        if total > have:
            faces.populate(self.school, total - have, None)

    def api_key(self) -> str:
        from portal.auth import api_key_create

        _, secret = api_key_create(school=self.school, scopes=["identify"], name="gates")
        return secret
