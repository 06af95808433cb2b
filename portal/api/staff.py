"""Staff and integration endpoints (docs/architecture.md, "Parent pages and the JSON API"),
authenticated by a school-scoped API key."""

from __future__ import annotations

import math

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from biometrics import faces, image_checks
from biometrics.matching import identify
from biometrics.models import Photo
from biometrics.services import NoActiveConsent, photo_enrol
from consent.actors import Actor
from consent.languages import codes
from consent.models import Student
from consent.roster_csv import date_of_birth_problem, text_problem
from consent.selectors import purpose_get
from consent.services import (
    ConsentError,
    child_refusal_record,
    guardian_get_or_create,
    guardianship_link,
    student_create,
    student_leave,
)
from portal.child_auth import child_link_issue

from .authentication import ApiKeyAuthentication
from .errors import ApiError, error_response
from .limits import BoundedJSONParser
from .permissions import HasApiKeyScope
from .serializers import ErrorSerializer

UPLOAD_OVERHEAD = 64 * 1024


class StaffView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKeyScope]
    required_scope = "roster"

    @property
    def school(self):
        return self.request.auth.school

    @property
    def actor(self) -> Actor:
        return Actor.api_key(self.request.auth)

    def student(self, student_id) -> Student:
        return get_object_or_404(Student, pk=student_id, school=self.school)


def valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _no_control_characters(column: str):
    def check(value: str) -> None:
        if problem := text_problem(column, value):
            raise serializers.ValidationError(problem)

    return check


def _born_by_now(value) -> None:
    if value is not None and (problem := date_of_birth_problem(value)):
        raise serializers.ValidationError(problem)


class StudentIn(serializers.Serializer):
    """The same bounds as a roster line (consent.roster_csv)."""

    external_id = serializers.CharField(
        max_length=100, validators=[_no_control_characters("external_id")]
    )
    name = serializers.CharField(max_length=200, validators=[_no_control_characters("name")])
    date_of_birth = serializers.DateField(
        required=False, allow_null=True, validators=[_born_by_now]
    )
    class_name = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        validators=[_no_control_characters("class_name")],
    )


class IdOut(serializers.Serializer):
    id = serializers.UUIDField()


class StudentsView(StaffView):
    @extend_schema(
        request=StudentIn, responses={201: IdOut, 400: ErrorSerializer, 409: ErrorSerializer}
    )
    def post(self, request):
        data = valid(StudentIn, request.data)
        try:
            student = student_create(
                school=self.school,
                external_id=data["external_id"],
                name=data["name"],
                date_of_birth=data.get("date_of_birth"),
                class_name=data.get("class_name", ""),
                actor=self.actor,
            )
        except IntegrityError as exc:
            raise ApiError(
                "duplicate_student", "A student with this external_id exists.", 409
            ) from exc
        return Response({"id": student.pk}, status=status.HTTP_201_CREATED)


class StudentLeaveView(StaffView):
    @extend_schema(request=None, responses={200: None, 404: ErrorSerializer})
    def post(self, request, student_id):
        student = student_leave(student=self.student(student_id), actor=self.actor)
        return Response({"id": student.pk, "status": student.status, "left_on": student.left_on})


class RefusalIn(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    purpose = serializers.CharField(max_length=50, required=False, allow_blank=True)


class ChildRefusalView(StaffView):
    @extend_schema(request=RefusalIn, responses={201: IdOut, 400: ErrorSerializer})
    def post(self, request, student_id):
        student = self.student(student_id)
        data = valid(RefusalIn, request.data)
        purpose = None
        if data.get("purpose"):
            try:
                purpose = purpose_get(school=self.school, code=data["purpose"])
            except ConsentError as exc:
                raise ApiError(exc.code, exc.detail, 400) from exc
        outcome = child_refusal_record(
            student=student, actor=self.actor, note=data.get("note", ""), purpose=purpose
        )
        return Response({"id": outcome.record.receipt_id}, status=status.HTTP_201_CREATED)


class ChildLinkOut(serializers.Serializer):
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()


# The child's age decides whether they may have their own sign-in (409), or cannot be told (400).
CHILD_LINK_STATUS = {"below_competence_age": 409, "no_date_of_birth": 400}


class ChildLinkView(StaffView):
    @extend_schema(
        request=None,
        responses={201: ChildLinkOut, 400: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, student_id):
        """A one-time sign-in link for the child's own page (docs/child-sign-in.md): 409
        `below_competence_age` below the school's competence age, 400 `no_date_of_birth`
        when it is not known. A new link ends the child's earlier ones."""
        student = self.student(student_id)
        try:
            link = child_link_issue(student=student, actor=self.actor)
        except ConsentError as exc:
            raise ApiError(exc.code, exc.detail, CHILD_LINK_STATUS.get(exc.code, 400)) from exc
        return Response(
            {"url": link.url, "expires_at": link.expires_at}, status=status.HTTP_201_CREATED
        )


class GuardianIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=200, validators=[_no_control_characters("name")])
    student_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=50)
    parental_responsibility = serializers.BooleanField(default=True)
    # Empty: the guardian has not chosen; their pages follow their browser.
    language = serializers.ChoiceField(choices=["", *codes()], default="")


class GuardiansView(StaffView):
    @extend_schema(request=GuardianIn, responses={201: IdOut, 400: ErrorSerializer})
    def post(self, request):
        """Link a guardian to this school's children, making the guardian if the address is
        new. A guardian who exists (perhaps with children at another school) is linked as they
        are: `name` and `language` are for new guardians only, and no address or account is
        ever changed from here. Each link is audited."""
        data = valid(GuardianIn, request.data)
        students = list(Student.objects.filter(school=self.school, pk__in=data["student_ids"]))
        if len(students) != len(set(data["student_ids"])):
            raise ApiError("unknown_student", "Some student_ids are not at this school.", 400)
        with transaction.atomic():
            guardian = guardian_get_or_create(
                email=data["email"], name=data["name"], language=data["language"]
            )
            for student in students:
                guardianship_link(
                    guardian=guardian,
                    student=student,
                    parental_responsibility=data["parental_responsibility"],
                    actor=self.actor,
                )
        return Response({"id": guardian.pk}, status=status.HTTP_201_CREATED)


class PhotoOut(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["pending", "enrolled", "rejected"])
    reason = serializers.CharField(allow_blank=True)


def _too_big(request, limit: int) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > limit + UPLOAD_OVERHEAD


def _uploaded_image(request, limit: int) -> bytes:
    """The `image` part's bytes, refused early (and unread) when it is over the limit."""
    if _too_big(request, limit):
        raise ApiError("too_large", image_checks.ERRORS["too_large"], 422)
    upload = request.FILES.get("image")
    if upload is None or isinstance(upload, str):
        raise ApiError("missing_image", "Send the photo as the multipart field `image`.", 400)
    if upload.size > limit:
        raise ApiError("too_large", image_checks.ERRORS["too_large"], 422)
    return upload.read()


class StudentPhotosView(StaffView):
    required_scope = "enrol"
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"image": {"type": "string", "format": "binary"}},
            }
        },
        responses={202: PhotoOut, 409: ErrorSerializer, 422: ErrorSerializer},
    )
    def post(self, request, student_id):
        """Enrol a photo: 409 without an active purpose; 422 for what the file's header shows
        (not an image, wrong format, too large, too many pixels), nothing stored. Otherwise 202
        pending: a faces worker decodes it, and GET /staff/photos/{id}/ says `enrolled`, or
        `rejected` with the reason (no face, several faces, face too small, damaged)."""
        student = self.student(student_id)
        data = _uploaded_image(request, settings.FACE_MAX_UPLOAD_BYTES)
        try:
            photo = photo_enrol(student=student, data=data, actor=self.actor, source="api")
        except NoActiveConsent as exc:
            return error_response(exc.code, exc.detail, status.HTTP_409_CONFLICT)
        except image_checks.ImageRejected as exc:
            return error_response(exc.code, exc.detail, 422)
        return Response(
            {"id": photo.pk, "status": photo.status, "reason": photo.reason},
            status=status.HTTP_202_ACCEPTED,
        )


class PhotoStatusView(StaffView):
    required_scope = "enrol"

    @extend_schema(responses={200: PhotoOut, 404: ErrorSerializer})
    def get(self, request, photo_id):
        photo = get_object_or_404(Photo, pk=photo_id, student__school=self.school)
        return Response({"id": photo.pk, "status": photo.status, "reason": photo.reason})


class IdentifyIn(serializers.Serializer):
    purpose = serializers.CharField(max_length=50)
    device = serializers.CharField(max_length=100, required=False, default="unknown device")
    embedding = serializers.ListField(child=serializers.FloatField(), required=False)
    image = serializers.FileField(required=False)


class MatchOut(serializers.Serializer):
    student_id = serializers.UUIDField()
    distance = serializers.FloatField()


class IdentifyOut(serializers.Serializer):
    match = MatchOut(allow_null=True)


def parse_embedding(value) -> np.ndarray:
    """128 finite numbers of a sensible size; true/false are not numbers."""
    if not isinstance(value, list) or len(value) != 128:
        raise ApiError("bad_embedding", "`embedding` must be a list of 128 numbers.", 400)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        raise ApiError("bad_embedding", "`embedding` must be a list of 128 numbers.", 400)
    numbers = [float(x) for x in value]
    if not all(math.isfinite(x) and abs(x) < 10 for x in numbers):
        raise ApiError("bad_embedding", "`embedding` holds a value out of range.", 400)
    return np.asarray(numbers, dtype=np.float64)


class IdentifyFields(serializers.Serializer):
    """The words of an identification request (JSON or multipart): bounded, no NUL."""

    purpose = serializers.CharField(max_length=50)
    device = serializers.CharField(max_length=100, required=False, default="unknown device")


class IdentifyView(StaffView):
    required_scope = "identify"
    parser_classes = [BoundedJSONParser, MultiPartParser]

    @extend_schema(
        request=IdentifyIn, responses={200: IdentifyOut, 400: ErrorSerializer, 422: ErrorSerializer}
    )
    def post(self, request):
        """Who is this? Only children for whom `purpose` is active right now can be answered.

        An `image` is a camera frame: it is decoded here, in the request, so it is bounded by
        its header first (IDENTIFY_MAX_UPLOAD_BYTES, IDENTIFY_MAX_PIXELS; docs/bad-input.md).
        Cameras that compute the embedding send the 128 numbers instead."""
        limit = settings.IDENTIFY_MAX_UPLOAD_BYTES
        if _too_big(request, limit):
            raise ApiError("too_large", image_checks.ERRORS["too_large"], 422)
        purpose_code = request.data.get("purpose")
        if not isinstance(purpose_code, str) or not purpose_code:
            raise ApiError("missing_purpose", "Name one `purpose`.", 400)
        fields = valid(
            IdentifyFields,
            {k: request.data[k] for k in ("purpose", "device") if request.data.get(k)},
        )
        try:
            purpose = purpose_get(school=self.school, code=fields["purpose"])
        except ConsentError as exc:
            raise ApiError(exc.code, exc.detail, 400) from exc
        if "embedding" in request.data and not request.FILES.get("image"):
            embedding = parse_embedding(request.data.get("embedding"))
        else:
            data = _uploaded_image(request, limit)
            try:
                image_checks.image_header(data, pixels_limit=settings.IDENTIFY_MAX_PIXELS)
                embedding = faces.embedding_from_photo(data)
            except image_checks.ImageRejected as exc:
                return error_response(exc.code, exc.detail, 422)
        match = identify(
            school=self.school, purpose=purpose, embedding=embedding, device=fields["device"]
        )
        if match is None:
            return Response({"match": None})
        return Response(
            {"match": {"student_id": match.student_id, "distance": round(match.distance, 4)}}
        )
