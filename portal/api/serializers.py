"""Shapes of the API's requests and answers (docs/architecture.md, "Parent pages and the JSON
API"). Also what the OpenAPI schema shows."""

from rest_framework import serializers


class MagicLinkRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class TokenRequestSerializer(serializers.Serializer):
    magic_token = serializers.CharField(max_length=200)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class PurposeBriefSerializer(serializers.Serializer):
    code = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "inactive"])


class ChildSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    school = serializers.CharField()
    purposes = PurposeBriefSerializer(many=True)


class HeldChildSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    school = serializers.CharField()
    school_slug = serializers.CharField()
    class_name = serializers.CharField()
    status = serializers.CharField()


class HeldPurposeSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "inactive"])
    reason = serializers.CharField()
    reason_code = serializers.CharField()
    alternative = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)


class HeldPhotoSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    captured_at = serializers.DateTimeField()
    source = serializers.CharField()
    sha256 = serializers.CharField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=["pending", "enrolled", "rejected"])


class HeldTemplateSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    model = serializers.CharField()
    model_version = serializers.CharField()
    detector = serializers.CharField()
    dimensions = serializers.IntegerField()
    photo_id = serializers.UUIDField(allow_null=True)


class TemplateDetailSerializer(HeldTemplateSerializer):
    landmarks = serializers.CharField()
    embedding = serializers.ListField(
        child=serializers.FloatField(), min_length=128, max_length=128
    )


class EventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    device = serializers.CharField()
    purpose = serializers.CharField()
    distance = serializers.FloatField()


class EventsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    recent = EventSerializer(many=True)


class SystemSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Stable English name, the same in every language.")
    kind = serializers.ChoiceField(choices=["database", "media", "cache", "http"])
    label = serializers.CharField(help_text="The name in the language asked.")
    holds = serializers.ListField(
        child=serializers.CharField(), help_text="What it holds, in the language asked."
    )
    items = serializers.IntegerField()
    pending = serializers.IntegerField(
        required=False, help_text="Copies not yet confirmed by the holder (`http` only)."
    )


class RetentionSerializer(serializers.Serializer):
    destroy_by = serializers.DateTimeField()
    rule = serializers.CharField()
    recognition_events_kept_days = serializers.IntegerField()


class AccessSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()


class ErasureBriefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    requested_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class VoiceSerializer(serializers.Serializer):
    """What the child said for themselves (consent.selectors.child_voice)."""

    refusal = serializers.BooleanField()
    refusal_at = serializers.DateTimeField(allow_null=True)
    refusal_by_staff = serializers.BooleanField()
    competent = serializers.BooleanField()
    competence_age = serializers.IntegerField()
    adult = serializers.BooleanField()
    adult_since = serializers.DateField(allow_null=True)


class HeldDataSerializer(serializers.Serializer):
    """The held-data document as `biometrics.selectors.held_data` builds it: the fields the API
    publishes of each section (the page and the export read the same document)."""

    child = HeldChildSerializer()
    purposes = HeldPurposeSerializer(many=True)
    photos = HeldPhotoSerializer(many=True)
    templates = HeldTemplateSerializer(many=True)
    recognition_events = EventsSerializer()
    systems = SystemSerializer(many=True)
    retention = RetentionSerializer()
    access_log = AccessSerializer(many=True)
    erasures = ErasureBriefSerializer(many=True)


class ChildDocumentSerializer(HeldDataSerializer):
    """The held-data document as a parent or the child reads it: with what the child said for
    themselves (`voice`: their refusal and when, whether they are an adult)."""

    voice = VoiceSerializer()


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
