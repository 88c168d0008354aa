"""Email a host can brand: group settings, templates per language, preview, and what
arrives over SMTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.jobs.email import deliver
from app.models import EmailTemplate, Group, Invitation, MessageKind, OutboxMessage
from tests.conftest import GQL, INVITE
from tests.mailserver import MailServer, body, mail_server, mail_server_session
from tests.redis_helpers import job_ctx, job_settings

__all__ = ["mail_server", "mail_server_session"]

EXPIRES_AT = datetime(2030, 12, 1, 10, 5, tzinfo=UTC)
MakeGroup = Callable[..., Awaitable[dict[str, Any]]]

UPDATE_GROUP = """
mutation($input: UpdateGroupInput!) {
  updateGroup(input: $input) { group { name mailFromName replyTo locale } errors { code field message } }
}"""
SET_TEMPLATE = """
mutation($input: EmailTemplateInput!) {
  setEmailTemplate(input: $input) { group { name } errors { code field message } }
}"""
PREVIEW = """
query($id: ID!, $kind: EmailKind) { emailPreview(invitationId: $id, kind: $kind) { subject text html } }
"""
KINDS = ("INVITATION", "RESEND", "REMINDER", "ACCEPTED_NOTICE")
LINK_KINDS = KINDS[:3]
# A word each language's built-in emails use, and how it writes a date.
LANGUAGES = {
    "en": ("invitation", "December"),
    "nl": ("uitnodiging", "december"),
    "de": ("Einladung", "Dezember"),
}
DUTCH = {
    "subject": "Welkom bij {{ group_name }}, {{ first_name | default('collega') }}",
    "html": "<p>Hoi {{ first_name | default('daar') }}, {{ inviter_name | default('iemand') }} "
    'nodigt je uit.</p><p><a href="{{ accept_url }}">Doe mee</a> vóór {{ expires_at }}</p>',
    "text": "Hoi {{ first_name | default('daar') }},\n\nDoe mee: {{ accept_url }}\n"
    "Geldig tot {{ expires_at }}.\n",
}


@pytest.fixture
def settings(mail_server: MailServer, tmp_path: Path) -> Settings:
    """Settings that send to the test's SMTP server."""
    return job_settings(
        Settings(
            database_url="sqlite://:memory:",
            redis_url=None,
            accept_url="https://app.example.com/signup?invitation={token}",
            smtp_url=mail_server.url,
            smtp_timeout_seconds=5,
            mail_dir=str(tmp_path / "mail"),
            mail_from="Usher <invitations@usher.test>",
        )
    )


async def invite(gql: GQL, auth: str, email: str = "ben@example.com", **extra: Any) -> str:
    data = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": email, "firstName": "Ben"}],
                **extra,
            }
        },
        auth=auth,
    )
    assert data["invite"]["errors"] == []
    invitation_id: str = data["invite"]["invitations"][0]["id"]
    # A moment whose written form the tests know, in every language.
    await Invitation.filter(id=invitation_id).update(expires_at=EXPIRES_AT)
    return invitation_id


async def update_group(gql: GQL, auth: str, **fields: Any) -> dict[str, Any]:
    data = await gql(
        UPDATE_GROUP, {"input": {"groupType": "org", "groupId": "acme", **fields}}, auth=auth
    )
    result: dict[str, Any] = data["updateGroup"]
    return result


async def set_template(gql: GQL, auth: str, kind: str = "INVITATION", **fields: Any) -> list[Any]:
    data = await gql(
        SET_TEMPLATE,
        {"input": {"groupType": "org", "groupId": "acme", "kind": kind, **fields}},
        auth=auth,
    )
    errors: list[Any] = data["setEmailTemplate"]["errors"]
    return errors


async def preview(gql: GQL, auth: str, invitation_id: str, kind: str | None = "INVITATION") -> Any:
    data = await gql(PREVIEW, {"id": invitation_id, "kind": kind}, auth=auth)
    return data["emailPreview"]


@pytest.fixture
async def olivia(gql: GQL, make_group: MakeGroup) -> str:
    """The owner of the group `acme`, named "Acme & <Co>"."""
    token = gql.token("olivia", "olivia@acme.test", name="Olivia <Owner>")
    await make_group(token, name="Acme & <Co>")
    return token


# Built-in templates -------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(LANGUAGES))
async def test_each_builtin_template_renders_both_parts_with_the_link(
    gql: GQL, olivia: str, language: str
) -> None:
    assert (await update_group(gql, olivia, locale=language))["errors"] == []
    inv_id = await invite(gql, olivia, message="See <b>you</b> & soon")
    link = await _invite_url(gql, olivia, inv_id)
    word, month = LANGUAGES[language]
    for kind in KINDS:
        email = await preview(gql, olivia, inv_id, kind)
        assert email["subject"] and "\n" not in email["subject"], kind
        text, html = email["text"], email["html"]
        assert f'<html lang="{language}">' in html, kind
        assert word in text and word in html, kind
        # User input is escaped in HTML, and only there.
        assert "Acme &amp; &lt;Co&gt;" in html and "<Co>" not in html, kind
        assert "Acme & <Co>" in text, kind
        if kind in LINK_KINDS:
            assert link in text and f'href="{link}"' in html, kind
            assert "2030, 10:05" in text and month in text, kind
        else:
            assert "signup?invitation=" not in text + html, kind
        if kind in ("INVITATION", "RESEND"):
            assert "See &lt;b&gt;you&lt;/b&gt; &amp; soon" in html and "<b>" not in html
            assert "See <b>you</b> & soon" in text


async def _invite_url(gql: GQL, auth: str, inv_id: str) -> str:
    data = await gql(
        "query($id: ID!) { invitation(id: $id) { inviteUrl } }", {"id": inv_id}, auth=auth
    )
    url: str = data["invitation"]["inviteUrl"]
    return url


async def test_the_language_is_the_invitations_then_the_groups_best_match(
    gql: GQL, olivia: str
) -> None:
    inv_id = await invite(gql, olivia)
    assert (await preview(gql, olivia, inv_id))["subject"].startswith("Olivia <Owner> invited")
    assert (await update_group(gql, olivia, locale="de-AT"))["group"]["locale"] == "de-AT"
    german = await preview(gql, olivia, inv_id)
    assert german["subject"] == "Olivia <Owner> lädt Sie zu Acme & <Co> ein"
    assert "1. Dezember 2030, 10:05 UTC" in german["text"]
    await Invitation.filter(id=inv_id).update(locale="nl")
    dutch = await preview(gql, olivia, inv_id)
    assert dutch["subject"] == "Olivia <Owner> nodigt je uit voor Acme & <Co>"
    assert "1 december 2030, 10:05 UTC" in dutch["text"]
    # The inviter's notice follows the group, not the invitee's language.
    assert (await preview(gql, olivia, inv_id, "ACCEPTED_NOTICE"))["text"].startswith("Hallo")
    # A language with no built-in templates: English, with English dates.
    await Invitation.filter(id=inv_id).update(locale="fr")
    french = await preview(gql, olivia, inv_id)
    assert french["text"].startswith("Hello Ben,") and "December 1, 2030" in french["text"]


async def test_the_invitations_subject_replaces_the_templates(gql: GQL, olivia: str) -> None:
    inv_id = await invite(gql, olivia)
    await Invitation.filter(id=inv_id).update(subject="Your seat\r\nat  Acme")
    for kind in LINK_KINDS:
        assert (await preview(gql, olivia, inv_id, kind))["subject"] == "Your seat at Acme"
    notice = await preview(gql, olivia, inv_id, "ACCEPTED_NOTICE")
    assert notice["subject"] == "Your invitation to Acme & <Co> was accepted"


# Group settings ----------------------------------------------------------------------


async def test_update_group_sets_and_clears_the_branding(gql: GQL, olivia: str) -> None:
    done = await update_group(
        gql,
        olivia,
        name=" Acme BV ",
        mailFromName="Acme Team",
        replyTo="Help@Acme.com",
        locale="NL",
    )
    assert done == {
        "group": {
            "name": "Acme BV",
            "mailFromName": "Acme Team",
            "replyTo": "Help@acme.com",
            "locale": "nl",
        },
        "errors": [],
    }
    # Left out: unchanged; null or empty: cleared.
    done = await update_group(gql, olivia, mailFromName=None, replyTo="")
    assert done["group"] == {
        "name": "Acme BV",
        "mailFromName": None,
        "replyTo": None,
        "locale": "nl",
    }


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"mailFromName": "Acme\r\nBcc: all@example.com"}, "INVALID_INPUT", ["mailFromName"]),
        ({"mailFromName": "A" * 101}, "INVALID_INPUT", ["mailFromName"]),
        ({"replyTo": "not an address"}, "INVALID_EMAIL", ["replyTo"]),
        ({"replyTo": "help@acme.com\nBcc: x@example.com"}, "INVALID_INPUT", ["replyTo"]),
        ({"locale": "xx-nowhere"}, "INVALID_INPUT", ["locale"]),
        ({"locale": "klingon"}, "INVALID_INPUT", ["locale"]),
        ({"name": None}, "INVALID_INPUT", ["name"]),
        ({"name": "   "}, "INVALID_INPUT", ["name"]),
    ],
)
async def test_update_group_refuses_bad_settings_and_changes_nothing(
    gql: GQL, olivia: str, fields: dict[str, Any], code: str, field: list[str]
) -> None:
    # One bad value among good ones: nothing is written.
    result = await update_group(
        gql, olivia, **({"mailFromName": "Acme Team", "locale": "de"} | fields)
    )
    assert result["group"] is None
    [error] = result["errors"]
    assert (error["code"], error["field"]) == (code, field), error
    group = await Group.get(external_id="acme")
    assert (group.name, group.mail_from_name, group.locale) == ("Acme & <Co>", None, None)


async def test_only_managers_may_brand_a_group(
    gql: GQL, olivia: str, make_group: MakeGroup, api_key: str
) -> None:
    stranger = gql.token("mallory", "mallory@example.com")
    refused = await update_group(gql, stranger, mailFromName="Mallory")
    assert [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]
    assert [e["code"] for e in await set_template(gql, stranger, **DUTCH)] == ["NOT_FOUND"]
    done = await update_group(gql, api_key, mailFromName="Acme by key")
    assert done["group"]["mailFromName"] == "Acme by key"
    assert await set_template(gql, api_key, locale="nl", **DUTCH) == []


# Group templates: validation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        (
            {"html": "<p>{{ group_name.__class__.__mro__ }} {{ accept_url }}</p>"},
            ["html"],
            "may not",
        ),
        (
            {"text": "{% if first_name %}{{ first_name.__class__ }}{% endif %}{{ accept_url }}"},
            ["text"],
            "may not",
        ),
        ({"subject": "Hi {{ nobody }}"}, ["subject"], "'nobody' is undefined"),
        (
            {"text": "{{ accepter_name }} {{ accept_url }}"},
            ["text"],
            "'accepter_name' is undefined",
        ),
        ({"html": "<p>{{ accept_url }</p>"}, ["html"], "line 1"),
        (
            {
                "text": "{% for c in group_name %}{% for d in group_name %}x{% endfor %}{% endfor %}{{ accept_url }}"
            },
            ["text"],
            "loops",
        ),
        ({"text": "{{ lipsum(1000) }} {{ accept_url }}"}, ["text"], "calls"),
        ({"text": "{{ group_name.upper() }} {{ accept_url }}"}, ["text"], "calls"),
        ({"html": "{{ message | safe }} {{ accept_url }}"}, ["html"], "'safe'"),
        ({"text": "{{ group_name * 100000000 }} {{ accept_url }}"}, ["text"], "operator '*'"),
        ({"text": '{% include "_layout.html" %}{{ accept_url }}'}, ["text"], "includes"),
        (
            {
                "text": "{% set a = group_name ~ group_name %}{% set a = a ~ a %}{{ a }}{{ accept_url }}"
            },
            ["text"],
            "variables",
        ),
        ({"html": "<p>Welcome to {{ group_name }}</p>"}, ["html"], "link"),
        ({"text": "{% if first_name %}{{ accept_url }}{% endif %}"}, ["text"], "link"),
        ({"subject": "{% if message %}Hi{% endif %}"}, ["subject"], "empty"),
        ({"html": "x" * 100_001}, ["html"], "at most 100000"),
        ({"subject": "Hello\x00"}, ["subject"], "control"),
        ({"subject": "Hello\nthere"}, ["subject"], "control"),
        ({"text": None}, ["text"], "empty"),
        ({"locale": "xx-nowhere"}, ["locale"], "Unknown language"),
    ],
)
async def test_a_template_that_would_misbehave_is_refused_on_its_field(
    gql: GQL, olivia: str, fields: dict[str, Any], field: list[str], words: str
) -> None:
    [error] = await set_template(gql, olivia, **(DUTCH | fields))
    assert (error["code"], error["field"]) == ("INVALID_INPUT", field), error
    assert words in error["message"], error
    assert await EmailTemplate.all().count() == 0


async def test_the_notice_needs_no_link_and_sees_the_accepter(gql: GQL, olivia: str) -> None:
    errors = await set_template(
        gql,
        olivia,
        "ACCEPTED_NOTICE",
        subject="{{ accepter_name }} is in",
        html="<p>{{ accepter_name }}{% if accepter_email %} ({{ accepter_email }}){% endif %}</p>",
        text="{{ accepter_name }} joined {{ group_name }}.",
    )
    assert errors == []


# Group templates: lookup ------------------------------------------------------------


async def test_lookup_group_language_then_group_then_builtin_language_then_builtin(
    gql: GQL, olivia: str
) -> None:
    await update_group(gql, olivia, locale="de-AT")
    inv_id = await invite(gql, olivia)

    def mark(name: str) -> dict[str, str]:
        return {
            "subject": f"{name} {{{{ group_name }}}}",
            "html": f"<p>{name} {{{{ accept_url }}}}</p>",
            "text": f"{name} {{{{ accept_url }}}} {{{{ expires_at }}}}",
        }

    assert await set_template(gql, olivia, locale="", **mark("any")) == []
    assert await set_template(gql, olivia, locale="de", **mark("german")) == []
    assert await set_template(gql, olivia, locale="de_at", **mark("austrian")) == []
    assert await set_template(gql, olivia, "RESEND", locale="nl", **mark("dutch resend")) == []
    assert (await preview(gql, olivia, inv_id))["subject"] == "austrian Acme & <Co>"

    removed = await set_template(gql, olivia, locale="de-AT", subject=None, html=None, text=None)
    assert removed == []
    german = await preview(gql, olivia, inv_id)
    assert german["subject"] == "german Acme & <Co>"
    assert german["html"].startswith("<p>german https://app.example.com/signup?invitation=inv_")
    assert "1. Dezember 2030, 10:05 UTC" in german["text"]

    assert await set_template(gql, olivia, locale="de") == []  # all left out: removed too
    assert (await preview(gql, olivia, inv_id))["subject"] == "any Acme & <Co>"
    # A template for any language writes dates in the language asked for.
    assert "1. Dezember 2030" in (await preview(gql, olivia, inv_id))["text"]

    assert await set_template(gql, olivia, locale="") == []
    builtin = await preview(gql, olivia, inv_id)
    assert builtin["subject"] == "Olivia <Owner> lädt Sie zu Acme & <Co> ein"
    # Other kinds and languages were never touched.
    assert (await preview(gql, olivia, inv_id, "RESEND"))["subject"].startswith("Erinnerung:")
    await update_group(gql, olivia, locale=None)
    assert (await preview(gql, olivia, inv_id))[
        "subject"
    ] == "Olivia <Owner> invited you to join Acme & <Co>"
    await Invitation.filter(id=inv_id).update(locale="nl")
    assert (await preview(gql, olivia, inv_id, "RESEND"))["subject"] == "dutch resend Acme & <Co>"
    assert await EmailTemplate.all().count() == 1


async def test_saving_again_replaces_the_template(gql: GQL, olivia: str) -> None:
    assert await set_template(gql, olivia, locale="nl", **DUTCH) == []
    assert await set_template(gql, olivia, locale="nl", **(DUTCH | {"subject": "Nieuw"})) == []
    [row] = await EmailTemplate.all()
    assert (row.locale, row.subject, row.kind.value) == ("nl", "Nieuw", "invitation")


# Preview: who may see it ------------------------------------------------------------


async def test_the_preview_is_for_those_who_may_manage_the_invitation(
    gql: GQL, olivia: str, api_key: str
) -> None:
    inv_id = await invite(gql, olivia)
    assert await preview(gql, api_key, inv_id) == await preview(gql, olivia, inv_id)
    assert await preview(gql, olivia, inv_id, None) == await preview(gql, olivia, inv_id)
    invitee = gql.token("ben", "ben@example.com")
    stranger = gql.token("mallory", "mallory@example.com")
    assert (
        await gql("query($id: ID!) { invitation(id: $id) { id } }", {"id": inv_id}, auth=invitee)
    )["invitation"]
    for caller in (invitee, stranger):
        assert await preview(gql, caller, inv_id) is None
    assert await preview(gql, olivia, "not-an-id") is None
    assert await preview(gql, olivia, "00000000-0000-0000-0000-000000000000") is None


# End to end -------------------------------------------------------------------------


async def test_a_branded_dutch_invitation_arrives_as_previewed(
    gql: GQL, olivia: str, settings: Settings, mail_server: MailServer
) -> None:
    branded = await update_group(
        gql, olivia, mailFromName="Acme — Team", replyTo="help@acme.com", locale="nl"
    )
    assert branded["errors"] == []
    assert await set_template(gql, olivia, locale="nl", **DUTCH) == []
    inv_id = await invite(gql, olivia)
    shown = await preview(gql, olivia, inv_id)
    assert shown["subject"] == "Welkom bij Acme & <Co>, Ben"
    assert shown["html"].startswith("<p>Hoi Ben, Olivia &lt;Owner&gt; nodigt je uit.</p>")
    assert "vóór 1 december 2030, 10:05 UTC" in shown["html"]

    row = await OutboxMessage.get(invitation_id=inv_id, kind=MessageKind.INVITATION)
    assert await deliver(job_ctx(settings), outbox_id=str(row.id)) == "sent"
    [mail] = await mail_server.handler.wait_for(1)
    assert mail["Subject"] == shown["subject"]
    assert mail["From"].addresses[0].display_name == "Acme — Team"
    assert mail["From"].addresses[0].addr_spec == "invitations@usher.test"
    assert mail["Reply-To"] == "help@acme.com"
    # The same parts, line breaks apart (SMTP carries them as CRLF).
    assert body(mail, "plain").replace("\r\n", "\n") == shown["text"]
    assert body(mail, "html").replace("\r\n", "\n") == shown["html"]


async def test_a_template_that_fails_on_real_data_fails_the_email_once(
    gql: GQL, olivia: str, settings: Settings, mail_server: MailServer
) -> None:
    # The sample address is long enough for the tenth character; this invitee's is not.
    fields = DUTCH | {"text": "{{ email[10] }} {{ accept_url }}"}
    assert await set_template(gql, olivia, **fields) == []
    inv_id = await invite(gql, olivia, email="al@acme.io")
    # The preview says so, as a top-level error with its code.
    answer = await gql.raw(PREVIEW, {"id": inv_id, "kind": "INVITATION"}, auth=olivia)
    assert answer["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "template" in answer["errors"][0]["message"]

    row = await OutboxMessage.get(invitation_id=inv_id, kind=MessageKind.INVITATION)
    assert await deliver(job_ctx(settings), outbox_id=str(row.id)) == "failed"
    invitation = await Invitation.get(id=inv_id)
    assert invitation.delivery_status.value == "failed"
    assert invitation.delivery_error and "template error" in invitation.delivery_error
    assert mail_server.handler.messages == []
