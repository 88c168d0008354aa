"""The stored data: users, groups, memberships, invitations and what hangs off them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class JSONValueField(fields.JSONField):  # type: ignore[type-arg]
    """A JSON column whose Python value may be of any JSON kind, strings included.

    Tortoise's JSONField takes a `str` given to it for JSON already encoded, so `"42"`
    would be stored as the number 42 and `"hello"` refused. Here a string is a string.
    The column is the same as JSONField's, and migrations describe it as one.
    Tortoise also decodes strings passed to a model's constructor: set such a field
    after constructing the model, not through `Model.create(...)`.
    """

    def to_db_value(self, value: Any, instance: Any) -> str | None:
        if isinstance(value, str):
            self.validate(value)
            return str(self.encoder(value))
        return super().to_db_value(value, instance)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        _, args, kwargs = super().deconstruct()
        return "tortoise.fields.data.JSONField", args, kwargs

    def describe(self, serializable: bool) -> dict[str, Any]:
        described: dict[str, Any] = super().describe(serializable)
        if serializable:
            described["field_type"] = "JSONField"
        return described


class InvitationStatus(StrEnum):
    """Stored status; EXPIRED may lag behind the clock (see `Invitation.effective_status`)."""

    DRAFT = "draft"
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    REVOKED = "revoked"


OPEN_STATUSES = (InvitationStatus.DRAFT, InvitationStatus.PENDING)


class TargetType(StrEnum):
    """Whom an invitation is for: one email address, or whoever holds the link."""

    EMAIL = "email"
    LINK = "link"


class DeliveryStatus(StrEnum):
    """Where the invitation email is."""

    NOT_SENT = "not_sent"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    DISABLED = "disabled"


class JoinMethod(StrEnum):
    """How a membership came to be."""

    CREATOR = "creator"
    INVITATION = "invitation"
    AUTOJOIN = "autojoin"


class EventType(StrEnum):
    """What happened to an invitation."""

    CREATED = "created"
    SENT = "sent"
    DELIVERY_FAILED = "delivery_failed"
    RESENT = "resent"
    RENEWED = "renewed"
    UPDATED = "updated"
    REVOKED = "revoked"
    DECLINED = "declined"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REMINDED = "reminded"


class MessageKind(StrEnum):
    """What the outbox carries: emails about an invitation, and webhook deliveries."""

    INVITATION = "invitation"
    RESEND = "resend"
    ACCEPTED_NOTICE = "accepted_notice"
    REMINDER = "reminder"
    WEBHOOK = "webhook"


class EmailKind(StrEnum):
    """The emails a group may brand with templates of its own."""

    INVITATION = "invitation"
    RESEND = "resend"
    REMINDER = "reminder"
    ACCEPTED_NOTICE = "accepted_notice"


class User(Model):
    """A person known from a JWT `sub`, created on first sight, never by an invitation."""

    id = fields.UUIDField(primary_key=True)
    external_id = fields.CharField(max_length=255, unique=True)
    email = fields.CharField(max_length=320, null=True)
    # As the last JWT said: only a verified address gets the acceptance notice.
    email_verified = fields.BooleanField(default=False, db_default=False)
    name = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class ApiKey(Model):
    """A credential for the host app backend. Only a hash of the key is kept."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=100)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class Group(Model):
    """An organization, workspace, board…: whatever the host app invites people into."""

    id = fields.UUIDField(primary_key=True)
    type = fields.CharField(max_length=64)
    external_id = fields.CharField(max_length=255)
    name = fields.CharField(max_length=255)
    autojoin_role = fields.CharField(max_length=64, null=True)
    # Branding of the group's emails: the sender's display name, a Reply-To address and
    # the default language (a BCP 47 tag such as `nl` or `de-AT`).
    mail_from_name = fields.CharField(max_length=100, null=True)
    reply_to = fields.CharField(max_length=320, null=True)
    locale = fields.CharField(max_length=16, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "groups"
        unique_together = (("type", "external_id"),)


class AutojoinDomain(Model):
    """An email domain whose verified users may join a group without an invitation."""

    id = fields.IntField(primary_key=True)
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="autojoin_domains", on_delete=fields.CASCADE
    )
    domain = fields.CharField(max_length=255, db_index=True)
    # Published by the group's admins as `usher-verification=<token>` in a TXT record at
    # `_usher.<domain>` to prove they control the domain; random, kept while it is listed.
    verification_token = fields.CharField(max_length=64)
    # Set once ownership is shown; until then the domain offers nobody autojoin.
    verified_at = fields.DatetimeField(null=True)

    class Meta:
        table = "autojoin_domains"
        unique_together = (("group", "domain"),)


class Membership(Model):
    """A user's place in a group, with a role."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="memberships", on_delete=fields.CASCADE
    )
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="memberships", on_delete=fields.CASCADE
    )
    role = fields.CharField(max_length=64)
    permissions: list[str] = fields.JSONField(default=list)
    joined_via = fields.CharEnumField(JoinMethod, max_length=16)
    invitation_id = fields.UUIDField(null=True)
    # The accepted invitation's metadata, carried over on accept.
    metadata: Any = JSONValueField(null=True)
    joined_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "memberships"
        unique_together = (("user", "group"),)
        indexes = (("group_id", "joined_at", "id"),)  # a group's members, newest first


class Invitation(Model):
    """An invitation: a record, never a user, until someone accepts it."""

    id = fields.UUIDField(primary_key=True)
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="invitations", on_delete=fields.CASCADE
    )
    target_type = fields.CharEnumField(TargetType, max_length=8)
    email = fields.CharField(max_length=320, null=True)
    # Lower-cased address used for matching; NULL for links.
    email_key = fields.CharField(max_length=320, null=True, db_index=True)
    # Equals email_key while the invitation is DRAFT or PENDING, NULL otherwise: the
    # unique (group, open_key) pair is the database's guarantee of one open invitation
    # per address, portable to SQLite, which has no partial unique indexes here.
    open_key = fields.CharField(max_length=320, null=True)
    first_name = fields.CharField(max_length=255, null=True)
    last_name = fields.CharField(max_length=255, null=True)
    role = fields.CharField(max_length=64)
    permissions: list[str] = fields.JSONField(default=list)
    message = fields.TextField(null=True)
    # The language of its emails (else the group's) and a subject that replaces the
    # template's.
    locale = fields.CharField(max_length=16, null=True)
    subject = fields.CharField(max_length=255, null=True)
    metadata: Any = JSONValueField(null=True)
    return_to = fields.CharField(max_length=2048, null=True)
    status = fields.CharEnumField(InvitationStatus, max_length=16, db_index=True)
    expires_at = fields.DatetimeField(db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    inviter: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sent_invitations", null=True, on_delete=fields.SET_NULL
    )
    inviter_api_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="invitations", null=True, on_delete=fields.SET_NULL
    )
    accepted_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="accepted_invitations", null=True, on_delete=fields.SET_NULL
    )
    accepted_at = fields.DatetimeField(null=True)
    send_email = fields.BooleanField(default=True)
    delivery_status = fields.CharEnumField(DeliveryStatus, max_length=16)
    delivery_error = fields.TextField(null=True)
    message_id = fields.CharField(max_length=255, null=True)
    send_count = fields.IntField(default=0)
    last_sent_at = fields.DatetimeField(null=True)
    reminder_sent_at = fields.DatetimeField(null=True)
    # Bumped to rotate the token: links carrying an older version stop working.
    token_version = fields.IntField(default=1)
    max_uses = fields.IntField(null=True)
    use_count = fields.IntField(default=0)

    class Meta:
        table = "invitations"
        unique_together = (("group", "open_key"),)
        # A group's invitations newest first, all or by status, read from the index.
        # The last: PENDING rows past their expiry not yet swept, counted for `totalCount`.
        indexes = (
            ("group_id", "created_at", "id"),
            ("group_id", "status", "created_at", "id"),
            ("group_id", "status", "expires_at"),
        )


class InvitationCount(Model):
    """How many invitations a group holds in one stored status.

    Kept by database triggers on `invitations` (migration 0008) in the transaction of each
    insert, status change and delete, so `totalCount` reads a few rows, never the group's.
    """

    id = fields.IntField(primary_key=True)
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="invitation_counts", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(InvitationStatus, max_length=16)
    n = fields.IntField(default=0)

    class Meta:
        table = "invitation_counts"
        unique_together = (("group", "status"),)


class InvitationUse(Model):
    """One user's acceptance of a LINK invitation (each user counts once)."""

    id = fields.IntField(primary_key=True)
    invitation: fields.ForeignKeyRelation[Invitation] = fields.ForeignKeyField(
        "models.Invitation", related_name="uses", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invitation_uses", on_delete=fields.CASCADE
    )
    used_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invitation_uses"
        unique_together = (("invitation", "user"),)


class InvitationEvent(Model):
    """An entry in an invitation's audit trail."""

    id = fields.UUIDField(primary_key=True)
    invitation: fields.ForeignKeyRelation[Invitation] = fields.ForeignKeyField(
        "models.Invitation", related_name="events", on_delete=fields.CASCADE
    )
    type = fields.CharEnumField(EventType, max_length=32)
    actor_user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invitation_events", null=True, on_delete=fields.SET_NULL
    )
    actor_api_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="invitation_events", null=True, on_delete=fields.SET_NULL
    )
    detail: dict[str, Any] | None = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "invitation_events"
        indexes = (("invitation_id", "created_at"),)


class Event(Model):
    """Something that happened, as the host app learns of it: by webhook and by the feed.

    `data` is a snapshot taken in the transaction of the change, so a delivery retried a
    day later still says what was true then.
    """

    id = fields.UUIDField(primary_key=True)
    type = fields.CharField(max_length=64)
    data: dict[str, Any] = fields.JSONField()
    # What the event is about: deliveries to one endpoint keep the order of each subject.
    invitation: fields.ForeignKeyNullableRelation[Invitation] = fields.ForeignKeyField(
        "models.Invitation", related_name="feed_events", null=True, on_delete=fields.CASCADE
    )
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="feed_events", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "events"
        indexes = (("created_at", "id"), ("invitation_id",))


class EmailTemplate(Model):
    """A group's own template for one kind of email, in one language ("" for any)."""

    id = fields.IntField(primary_key=True)
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="email_templates", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(EmailKind, max_length=16)
    locale = fields.CharField(max_length=16, default="")
    subject = fields.CharField(max_length=255)
    html = fields.TextField()
    text = fields.TextField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "email_templates"
        unique_together = (("group", "kind", "locale"),)


class WebhookEndpoint(Model):
    """Where the host app wants events posted, and the secret they are signed with."""

    id = fields.UUIDField(primary_key=True)
    url = fields.CharField(max_length=2048)
    # Event types wanted; empty: all of them.
    events: list[str] = fields.JSONField(default=list)
    description = fields.CharField(max_length=500, null=True)
    enabled = fields.BooleanField(default=True)
    secret = fields.CharField(max_length=100)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Set by the first delivery that fails for good after a success; cleared by a success.
    failing_since = fields.DatetimeField(null=True)
    disabled_reason = fields.CharField(max_length=500, null=True)

    class Meta:
        table = "webhook_endpoints"


class WebhookDelivery(Model):
    """One attempt to deliver an event to an endpoint: the endpoint's delivery log."""

    id = fields.UUIDField(primary_key=True)
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.CASCADE
    )
    event: fields.ForeignKeyRelation[Event] = fields.ForeignKeyField(
        "models.Event", related_name="deliveries", on_delete=fields.CASCADE
    )
    attempt = fields.IntField()
    status_code = fields.IntField(null=True)
    error = fields.TextField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_deliveries"
        indexes = (("endpoint_id", "created_at"),)


class OutboxMessage(Model):
    """A message to send (an email, a webhook delivery), written in the same transaction as
    the change that calls for it."""

    id = fields.UUIDField(primary_key=True)
    kind = fields.CharEnumField(MessageKind, max_length=32)
    # Emails: the invitation they are about.
    invitation: fields.ForeignKeyNullableRelation[Invitation] = fields.ForeignKeyField(
        "models.Invitation", related_name="outbox", null=True, on_delete=fields.CASCADE
    )
    # Webhooks: the event to post, and where.
    event: fields.ForeignKeyNullableRelation[Event] = fields.ForeignKeyField(
        "models.Event", related_name="outbox", null=True, on_delete=fields.CASCADE
    )
    endpoint: fields.ForeignKeyNullableRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="outbox", null=True, on_delete=fields.CASCADE
    )
    # The token version the message was written for: a resend supersedes older messages.
    token_version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    enqueued_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True, db_index=True)
    failed_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)

    class Meta:
        table = "outbox"
        indexes = (("invitation_id",),)


class QuotaCounter(Model):
    """How much of a quota one subject used in one fixed window (without Redis)."""

    id = fields.IntField(primary_key=True)
    # The quota's name and the subject, e.g. "mails-per-recipient:ben@example.com".
    key = fields.CharField(max_length=400)
    window_start = fields.DatetimeField()
    count = fields.IntField(default=0)

    class Meta:
        table = "quota_counters"
        unique_together = (("key", "window_start"),)
