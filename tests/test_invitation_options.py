"""An invitation's own email options (language, subject), its Message-ID, and the
metadata it carries to the membership."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.jobs.email import deliver
from app.models import (
    DeliveryStatus,
    Invitation,
    Membership,
    MessageKind,
    OutboxMessage,
    User,
)
from tests.conftest import GQL
from tests.lifecycle_helpers import ACCEPT, CREATE_LINK, token_of
from tests.mailserver import MailServer, body
from tests.redis_helpers import job_ctx
from tests.test_branding import mail_server, mail_server_session, olivia, settings

__all__ = ["mail_server", "mail_server_session", "olivia", "settings"]

INVITE = """
mutation($input: InviteInput!) {
  invite(input: $input) {
    invitations { id locale subject messageId inviteUrl metadata }
    errors { code field message }
  }
}"""
INVITATION = "query($id: ID!) { invitation(id: $id) { locale subject messageId } }"


async def invite(gql: GQL, auth: str, email: str = "ben@example.com", **extra: Any) -> Any:
    data = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": email}], **extra}},
        auth=auth,
    )
    return data["invite"]


async def test_locale_and_subject_are_kept_in_their_normal_form(gql: GQL, olivia: str) -> None:
    answer = await invite(gql, olivia, locale="de_at", subject="  Komm zu Acme  ")
    assert answer["errors"] == []
    [shown] = answer["invitations"]
    assert (shown["locale"], shown["subject"]) == ("de-AT", "Komm zu Acme")
    # Blank means none: the group's language and the template's subject.
    [plain] = (await invite(gql, olivia, "cy@example.com", locale=" ", subject=""))["invitations"]
    assert (plain["locale"], plain["subject"]) == (None, None)


async def test_bad_locale_or_subject_is_refused_on_its_field_and_writes_nothing(
    gql: GQL, olivia: str
) -> None:
    cases = [
        ({"locale": "klingon-x-y-z"}, ["locale"]),
        ({"locale": "../../etc"}, ["locale"]),
        ({"subject": "Hi\r\nBcc: all@example.com"}, ["subject"]),
        ({"subject": "x" * 256}, ["subject"]),
    ]
    for extra, field in cases:
        answer = await invite(gql, olivia, **extra)
        assert answer["invitations"] == []
        [error] = answer["errors"]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", field), extra
    assert await Invitation.all().count() == 0


async def test_the_language_and_subject_arrive_over_smtp_with_the_message_id(
    gql: GQL, olivia: str, settings: Settings, mail_server: MailServer
) -> None:
    answer = await invite(gql, olivia, locale="de", subject="Willkommen, Ben")
    [shown] = answer["invitations"]
    assert shown["messageId"] is None  # nothing sent yet
    row = await OutboxMessage.get(invitation_id=shown["id"], kind=MessageKind.INVITATION)
    assert await deliver(job_ctx(settings), outbox_id=str(row.id)) == "sent"
    [mail] = await mail_server.handler.wait_for(1)
    assert mail["Subject"] == "Willkommen, Ben"
    assert "Einladung" in body(mail, "plain")
    assert '<html lang="de">' in body(mail, "html")

    managed = (await gql(INVITATION, {"id": shown["id"]}, auth=olivia))["invitation"]
    assert managed["messageId"] == mail["Message-ID"]
    # The invitee sees the invitation, but not the message's id.
    ben = gql.token("ben", "ben@example.com")
    seen = (await gql(INVITATION, {"id": shown["id"]}, auth=ben))["invitation"]
    assert seen is not None and seen["messageId"] is None


async def test_metadata_is_carried_to_the_membership_on_accept(gql: GQL, olivia: str) -> None:
    metadata = {"plan": "pro", "seats": [1, 2], "note": "from the sales call"}
    [shown] = (await invite(gql, olivia, metadata=metadata))["invitations"]
    ben = gql.token("ben", "ben@example.com")
    accept = ACCEPT.replace("role permissions", "role permissions metadata")
    data = await gql(accept, {"token": token_of(shown["inviteUrl"])}, auth=ben)
    assert data["acceptInvitation"]["errors"] == []
    assert data["acceptInvitation"]["memberships"][0]["metadata"] == metadata
    stored = await Membership.get(invitation_id=shown["id"])
    assert stored.metadata == metadata


async def test_a_link_carries_plain_string_metadata_to_each_member(gql: GQL, olivia: str) -> None:
    data = await gql(
        CREATE_LINK,
        {"input": {"groupType": "org", "groupId": "acme", "metadata": "campaign-42"}},
        auth=olivia,
    )
    link = data["createInviteLink"]["invitation"]
    accept = ACCEPT.replace("role permissions", "role permissions metadata")
    for name in ("ann", "bob"):
        joiner = gql.token(name, f"{name}@example.com")
        answer = await gql(accept, {"token": token_of(link["inviteUrl"])}, auth=joiner)
        assert answer["acceptInvitation"]["memberships"][0]["metadata"] == "campaign-42"
    assert await Membership.filter(invitation_id=link["id"]).count() == 2


UPDATE_EMAIL = """
mutation($id: ID!, $email: String) {
  updateInvitation(id: $id, input: {email: $email}) {
    invitation { email status deliveryStatus inviteUrl events { type } }
    errors { code field message }
  }
}"""


async def _update_email(gql: GQL, auth: str, invitation_id: str, email: str | None) -> Any:
    data = await gql(UPDATE_EMAIL, {"id": invitation_id, "email": email}, auth=auth)
    return data["updateInvitation"]


async def test_a_bounced_address_is_corrected_and_emailed_again(
    gql: GQL, olivia: str, settings: Settings, mail_server: MailServer
) -> None:
    [shown] = (await invite(gql, olivia, "ben@exmaple.com"))["invitations"]
    # Only once its email has failed may a PENDING invitation change address.
    early = await _update_email(gql, olivia, shown["id"], "ben@example.com")
    assert [(e["code"], e["field"]) for e in early["errors"]] == [("INVALID_STATUS", ["email"])]
    await Invitation.filter(id=shown["id"]).update(
        delivery_status=DeliveryStatus.FAILED, delivery_error="550 no such domain"
    )
    await OutboxMessage.filter(invitation_id=shown["id"]).delete()

    fixed = await _update_email(gql, olivia, shown["id"], "Ben@Example.com")
    assert fixed["errors"] == []
    moved = fixed["invitation"]
    assert (moved["email"], moved["status"], moved["deliveryStatus"]) == (
        "Ben@example.com",
        "PENDING",
        "QUEUED",
    )
    assert moved["inviteUrl"] != shown["inviteUrl"]  # the old link stops working
    assert moved["events"][-1]["type"] == "UPDATED"
    row = await OutboxMessage.get(invitation_id=shown["id"], kind=MessageKind.INVITATION)
    assert await deliver(job_ctx(settings), outbox_id=str(row.id)) == "sent"
    [mail] = await mail_server.handler.wait_for(1)
    assert mail["To"] == "Ben@example.com"
    assert token_of(moved["inviteUrl"]) in body(mail, "plain")


async def test_a_draft_changes_address_without_an_email(gql: GQL, olivia: str) -> None:
    [shown] = (await invite(gql, olivia, "ann@example.com", draft=True))["invitations"]
    moved = await _update_email(gql, olivia, shown["id"], "anne@example.com")
    assert moved["errors"] == []
    assert (moved["invitation"]["email"], moved["invitation"]["status"]) == (
        "anne@example.com",
        "DRAFT",
    )
    assert await OutboxMessage.filter(invitation_id=shown["id"]).count() == 0


async def test_a_new_address_that_is_taken_is_refused_and_nothing_changes(
    gql: GQL, olivia: str
) -> None:
    [draft] = (await invite(gql, olivia, "ann@example.com", draft=True))["invitations"]
    await invite(gql, olivia, "cy@example.com")
    member = gql.token("dee", "dee@example.com")
    [to_dee] = (await invite(gql, olivia, "dee@example.com"))["invitations"]
    accepted = await gql(ACCEPT, {"token": token_of(to_dee["inviteUrl"])}, auth=member)
    assert accepted["acceptInvitation"]["errors"] == []
    made = await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=olivia)
    link = made["createInviteLink"]["invitation"]
    cases = [
        (draft["id"], "CY@example.com", "ALREADY_INVITED", "email"),
        (draft["id"], "dee@example.com", "ALREADY_MEMBER", "email"),
        (draft["id"], "not an address", "INVALID_EMAIL", "email"),
        (draft["id"], None, "INVALID_EMAIL", "email"),
        (link["id"], "eve@example.com", "INVALID_INPUT", "email"),
        (to_dee["id"], "eve@example.com", "INVALID_STATUS", "id"),  # accepted: final
    ]
    for invitation_id, email, code, field in cases:
        answer = await _update_email(gql, olivia, invitation_id, email)
        assert [(e["code"], e["field"]) for e in answer["errors"]] == [(code, [field])], email
    stored = await Invitation.get(id=draft["id"])
    assert stored.email == "ann@example.com" and stored.token_version == 1


async def _invite_through(app_settings: Settings, email: str) -> Any:
    """Create a group and invite `email` through an app made with `app_settings`."""
    import httpx

    from app.main import create_app
    from app.services.auth import make_dev_jwt

    app = create_app(app_settings, run_jobs=False)
    token = make_dev_jwt(app_settings, sub="olga", email="olga@acme.com")
    headers = {"Authorization": f"Bearer {token}"}
    make = 'mutation { createGroup(input: {type: "org", externalId: "acme", name: "Acme"}) { errors { code } } }'
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        await http.post("/graphql", json={"query": make}, headers=headers)
        variables = {
            "input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": email}]}
        }
        response = await http.post(
            "/graphql", json={"query": INVITE, "variables": variables}, headers=headers
        )
    return response.json()["data"]["invite"]


async def test_test_domains_are_accepted_in_development_only(database: str) -> None:
    development = Settings(accept_url="https://app.example.com/i?t={token}")
    answer = await _invite_through(development, "ben@staging.test")
    assert answer["errors"] == [] and len(answer["invitations"]) == 1
    await Invitation.all().delete()

    production = Settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        accept_url="https://app.example.com/i?t={token}",
        secret_key="production-test-secret-key-0123456789",
        jwt_secret="production-test-jwt-secret-0123456789",
    )
    answer = await _invite_through(production, "ben@staging.test")
    assert [(e["code"], e["field"]) for e in answer["errors"]] == [
        ("INVALID_EMAIL", ["invitees", "0", "email"])
    ]
    # Names no mail can reach are refused everywhere; the documented examples are not.
    answer = await _invite_through(development, "ann@box.localhost")
    assert answer["errors"][0]["code"] == "INVALID_EMAIL"
    answer = await _invite_through(production, "cy@corp.example")
    assert answer["errors"] == []


BY_KEY = """
mutation($input: InviteInput!) {
  invite(input: $input) {
    invitations { id inviteUrl inviter { externalId email name } }
    errors { code field message }
  }
}"""
PREVIEW_BY_TOKEN = "query($t: String!) { invitationByToken(token: $t) { inviterName } }"
EMAIL_PREVIEW = "query($id: ID!) { emailPreview(invitationId: $id) { subject text } }"


async def _invite_by(gql: GQL, auth: str, invited_by: Any, email: str = "ben@example.com") -> Any:
    variables = {
        "input": {
            "groupType": "org",
            "groupId": "acme",
            "invitees": [{"email": email}],
            "invitedBy": invited_by,
        }
    }
    return (await gql(BY_KEY, variables, auth=auth))["invite"]


async def test_an_api_key_invites_on_behalf_of_a_user_named_everywhere(
    gql: GQL, api_key: str, make_group: Any
) -> None:
    await make_group(api_key, name="Acme")
    olga = {"externalId": "olga", "email": "olga@acme.com", "name": "Olga Oak"}
    answer = await _invite_by(gql, api_key, olga)
    assert answer["errors"] == []
    [shown] = answer["invitations"]
    assert shown["inviter"] == olga
    token = token_of(shown["inviteUrl"])
    preview = (await gql(PREVIEW_BY_TOKEN, {"t": token}))["invitationByToken"]
    assert preview["inviterName"] == "Olga Oak"
    email = (await gql(EMAIL_PREVIEW, {"id": shown["id"]}, auth=api_key))["emailPreview"]
    assert "Olga Oak" in email["text"]
    # The host app vouches for the address: the acceptance notice goes there.
    ben = gql.token("ben", "ben@example.com")
    accepted = await gql(ACCEPT, {"token": token}, auth=ben)
    assert accepted["acceptInvitation"]["errors"] == []
    assert await OutboxMessage.filter(
        invitation_id=shown["id"], kind=MessageKind.ACCEPTED_NOTICE
    ).exists()
    # Named again, the same user, brought up to date.
    again = await _invite_by(gql, api_key, {"externalId": "olga", "name": "Olga O."}, "cy@x.io")
    assert again["invitations"][0]["inviter"] == {**olga, "name": "Olga O."}


async def test_only_an_api_key_may_name_another_inviter(
    gql: GQL, olivia: str, api_key: str
) -> None:
    users = await User.all().count()
    refused = await _invite_by(gql, olivia, {"externalId": "someone-else"})
    assert refused["invitations"] == []
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("FORBIDDEN", ["invitedBy"])]
    for bad, code, field in [
        ({"externalId": " "}, "INVALID_INPUT", ["invitedBy", "externalId"]),
        ({"externalId": "x", "email": "not mail"}, "INVALID_EMAIL", ["invitedBy", "email"]),
        ({"externalId": "x", "name": "a\nb"}, "INVALID_INPUT", ["invitedBy", "name"]),
    ]:
        answer = await _invite_by(gql, api_key, bad)
        assert [(e["code"], e["field"]) for e in answer["errors"]] == [(code, field)], bad
    assert await User.all().count() == users
    assert await Invitation.all().count() == 0


async def test_the_preview_names_an_inviter_without_a_name_by_address(gql: GQL) -> None:
    owner = gql.token("nameless", "pat@acme.com")
    make = 'mutation { createGroup(input: {type: "org", externalId: "acme", name: "Acme"}) { errors { code } } }'
    await gql(make, auth=owner)
    [shown] = (await invite(gql, owner))["invitations"]
    preview = await gql(PREVIEW_BY_TOKEN, {"t": token_of(shown["inviteUrl"])})
    assert preview["invitationByToken"]["inviterName"] == "pat@acme.com"
