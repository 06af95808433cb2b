"""Seed the demo school (idempotent): real faces, real templates, a real holder registered."""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from biometrics import demo_photos
from biometrics.models import Holder, RecognitionEvent
from biometrics.services import holder_create, holder_update, photo_enrol
from consent.actors import Actor
from consent.models import (
    Decision,
    Method,
    NoticeDelivery,
    Purpose,
    School,
    StaffMembership,
    Student,
)
from consent.services import (
    consent_decide,
    dpia_sign_off,
    guardian_get_or_create,
    guardianship_link,
    notice_deliveries_send,
    notice_publish,
    notice_text_add,
    purpose_create,
    purpose_text_set,
    purpose_update,
    school_create,
    school_policy_update,
    staff_membership_create,
    student_create,
)
from consent.texts import notice_languages

ACTOR = Actor.system("seed_demo")
HOLDER_NAME = "Reference holder (gate controller)"

PURPOSES = [
    (
        "gate_access",
        "Gate access",
        "The gate camera recognises your child's face to open the school gate.",
        "A photo ID card that opens the same gates.",
    ),
    (
        "attendance",
        "Attendance",
        "Cameras in the entrance hall record that your child has arrived at school.",
        "The class teacher takes the register by name, as usual.",
    ),
    (
        "library",
        "Library",
        "The library desk recognises your child's face to lend books.",
        "A library card with a barcode.",
    ),
]

# The same purposes in Simplified Chinese: name, description, alternative.
PURPOSES_ZH = {
    "gate_access": (
        "校门通行",
        "校门摄像头识别您孩子的面孔，为其打开学校大门。",
        "一张可以打开同样校门的带照片身份卡。",
    ),
    "attendance": (
        "考勤",
        "门厅的摄像头记录您的孩子已经到校。",
        "班主任照常点名。",
    ),
    "library": (
        "图书馆",
        "图书馆服务台识别您孩子的面孔，为其办理借书。",
        "一张带条形码的借书卡。",
    ),
}

NOTICE_ZH = (
    "演示小学希望将您孩子的面孔用于“{name}”。{desc}"
    "我们只在同意有效期间保存照片和面部模板（一组 128 个数字），保存时间绝不超过保留期限表所允许的"
    "范围。您可以随时一步撤回同意，所有数据将从每个系统中删除。未经同意时：{alt}"
)

HOLDER_NAME_ZH = "参考持有方（闸机控制器）"
DEMO_LANGUAGES = ["en", "zh-hans"]

NOTICE = (
    "Demo Primary School would like to use your child's face for {name}. {desc} "
    "We keep photos and a face template (a list of 128 numbers) only while consent stands and "
    "never longer than the retention schedule allows. You can withdraw at any time, in one "
    "step, and everything will be erased from every system. Without consent: {alt}"
)


HOLDER_NOT_CONFIGURED = (
    "Set REFERENCE_HOLDER_SECRET (or REFERENCE_HOLDER_SECRET_FILE): the demo's reference holder "
    "needs one (GUARDIAN_DEV_SECRETS=1 generates it, as `make run` does)."
)


class Command(BaseCommand):
    help = "Create (or complete) the demo school `demo` with real enrolled faces."

    def handle(self, *args, **options):
        if not settings.REFERENCE_HOLDER_SECRET:
            raise CommandError(HOLDER_NOT_CONFIGURED)
        school = School.objects.filter(slug="demo").first() or school_create(
            slug="demo",
            name="Demo Primary School",
            address="1 Example Road, Exampletown",
            dpo_name="Dana Officer",
            dpo_email="dpo@demo-school.example",
            languages=DEMO_LANGUAGES,
            actor=ACTOR,
        )
        if set(school.languages) != set(DEMO_LANGUAGES):  # a demo seeded before it spoke both
            school_policy_update(school=school, languages=DEMO_LANGUAGES, actor=ACTOR)
        purposes = {}
        for code, name, desc, alt in PURPOSES:
            purpose = Purpose.objects.filter(school=school, code=code).first() or purpose_create(
                school=school,
                code=code,
                name=name,
                description=desc,
                alternative=alt,
                dpia_reference=f"DPIA-2026-{code.upper()}",
                actor=ACTOR,
            )
            self._chinese(purpose, name, desc, alt)
            if not purpose.enabled:
                if purpose.dpia_sign_off() is None:
                    dpia_sign_off(
                        purpose=purpose,
                        signed_by=self._dpo(school),
                        note="Demo data: signed off by the demo DPO account.",
                        actor=ACTOR,
                    )
                purpose_update(purpose=purpose, enabled=True, actor=ACTOR)
            purposes[code] = purpose

        holder = Holder.objects.filter(school=school, name=HOLDER_NAME).first()
        if holder is None:
            holder_create(
                school=school,
                name=HOLDER_NAME,
                labels={"zh-hans": HOLDER_NAME_ZH},
                base_url=settings.REFERENCE_HOLDER_URL,
                secret=settings.REFERENCE_HOLDER_SECRET,
                actor=ACTOR,
            )
        else:
            # Follow the configured address and secret if they changed since the last seed.
            holder_update(
                holder=holder,
                base_url=settings.REFERENCE_HOLDER_URL,
                secret=settings.REFERENCE_HOLDER_SECRET,
                labels={"zh-hans": HOLDER_NAME_ZH},
                actor=ACTOR,
            )

        parent = guardian_get_or_create(email="parent@example.com", name="Alex Parent")
        parent2 = guardian_get_or_create(email="parent2@example.com", name="Sam Parent")

        children = [
            (
                "DEMO-001",
                "Eileen Demo",
                "Year 4",
                [parent, parent2],
                ["gate_access", "attendance"],
                [demo_photos.astronaut_face, demo_photos.astronaut_face_mirrored],
            ),
            (
                "DEMO-002",
                "Grace Demo",
                "Year 6",
                [parent],
                ["gate_access", "attendance", "library"],
                [demo_photos.grace_hopper],
            ),
            ("DEMO-003", "Ada Demo", "Year 2", [parent], [], []),
        ]
        rng = random.Random(42)  # noqa: S311 - demo data, not security
        for ext_id, name, class_name, guardians, granted, photos in children:
            student = Student.objects.filter(school=school, external_id=ext_id).first()
            if student is None:
                student = student_create(
                    school=school, external_id=ext_id, name=name, class_name=class_name, actor=ACTOR
                )
            for g in guardians:
                # The demo's notices go out here and now through the configured mail backend
                # (the console, in the demo), so the children's purposes can start at once.
                guardianship_link(guardian=g, student=student, actor=ACTOR, queue_notice=False)
            notice_deliveries_send(
                delivery_ids=NoticeDelivery.objects.filter(
                    guardianship__student=student, status=NoticeDelivery.Status.PENDING
                ).values_list("pk", flat=True)
            )
            if not student.decisions.exists():
                for code in granted:
                    purpose = purposes[code]
                    consent_decide(
                        student=student,
                        purpose=purpose,
                        guardian=guardians[0],
                        decision=Decision.GRANT,
                        notice_version=purpose.current_notice.version,
                        method=Method.PAPER,
                        actor=ACTOR,
                    )
            if photos and not student.photos.exists():
                for make in photos:
                    photo_enrol(
                        student=student,
                        data=make(),
                        actor=ACTOR,
                        source="seed_demo",
                        process_now=True,
                    )
            if granted and not RecognitionEvent.objects.filter(student=student).exists():
                self._events(student, [purposes[c] for c in granted], rng)
            self.stdout.write(
                f"  {name}: {student.photos.count()} photos, {student.templates.count()} templates"
            )
        self.stdout.write(self.style.SUCCESS("Demo school 'demo' is ready."))

    def _chinese(self, purpose: Purpose, name: str, desc: str, alt: str) -> None:
        """The purpose's words and its notice in English and Simplified Chinese (a notice
        published before the demo spoke Chinese gets its Chinese text, the same version)."""
        name_zh, desc_zh, alt_zh = PURPOSES_ZH[purpose.code]
        if not purpose.texts.filter(language="zh-hans").exists():
            purpose_text_set(
                purpose=purpose,
                language="zh-hans",
                name=name_zh,
                description=desc_zh,
                alternative=alt_zh,
                actor=ACTOR,
            )
        notice_zh = NOTICE_ZH.format(name=name_zh, desc=desc_zh, alt=alt_zh)
        notice = purpose.current_notice
        if notice is None:
            notice_publish(
                purpose=purpose,
                text=NOTICE.format(name=name.lower(), desc=desc, alt=alt),
                texts={"zh-hans": notice_zh},
                actor=ACTOR,
            )
        elif "zh-hans" not in notice_languages(notice):
            notice_text_add(notice=notice, language="zh-hans", text=notice_zh, actor=ACTOR)

    def _dpo(self, school: School):
        """The demo school's data protection officer (a staff account that cannot sign in
        until someone sets its password)."""
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username="dpo@demo-school.example",
            defaults={"email": "dpo@demo-school.example", "first_name": "Dana", "is_staff": True},
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            staff_membership_create(
                user=user, school=school, role=StaffMembership.Role.DPO, actor=ACTOR
            )
        return user

    @transaction.atomic
    def _events(self, student, purposes, rng) -> None:
        now = timezone.now()
        devices = {
            "gate_access": "Main gate camera",
            "attendance": "Entrance hall camera",
            "library": "Library desk camera",
        }
        RecognitionEvent.objects.bulk_create(
            RecognitionEvent(
                student=student,
                purpose=p,
                device=devices[p.code],
                distance=round(rng.uniform(0.28, 0.48), 4),
                at=now - timedelta(days=day, hours=rng.randint(0, 6), minutes=rng.randint(0, 59)),
            )
            for day in range(1, 15)
            for p in purposes
        )
