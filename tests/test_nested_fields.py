"""Nested fields: the same policy as the top-level queries, and a page per parent in one
query per level, whatever the number of parents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.models import (
    AutojoinDomain,
    DeliveryStatus,
    Group,
    Invitation,
    InvitationStatus,
    JoinMethod,
    Membership,
    TargetType,
    User,
)
from tests.conftest import GQL, QueryLog
from tests.lifecycle_helpers import OPEN, invite_one

GROUP_DATA = """
  name autojoinRole autojoinDomains
  members(first: 5) { totalCount edges { node { role user { externalId email } } } }
  invitations(first: 5) { totalCount edges { node { email } } }
"""
VIEWER_TREE = f"""{{ viewer {{ memberships {{ group {{ {GROUP_DATA}
  invitations(first: 5) {{ totalCount edges {{ node {{ email inviter {{ name }} events {{ type }}
    group {{ name members(first: 3) {{ totalCount edges {{ node {{ user {{ name }} }} }} }} }} }} }} }}
}} }} }} }}"""


async def _user(sub: str) -> User:
    return await User.create(external_id=sub, email=f"{sub}@acme.com", name=sub.title())


async def _group(n: int, owner: User, *, members: int, invitations: int) -> Group:
    """A group owned by `owner` with other members and pending invitations, written as rows."""
    group = await Group.create(type="org", external_id=f"g{n}", name=f"Group {n}")
    await Membership.create(user=owner, group=group, role="owner", joined_via=JoinMethod.CREATOR)
    for m in range(members):
        user = await _user(f"m{n}x{m}")
        await Membership.create(
            user=user, group=group, role="member", joined_via=JoinMethod.INVITATION
        )
    later = datetime.now(UTC) + timedelta(days=7)
    for i in range(invitations):
        email = f"i{i}@example.com"
        await Invitation.create(
            group=group,
            target_type=TargetType.EMAIL,
            email=email,
            email_key=email,
            open_key=email,
            role="member",
            status=InvitationStatus.PENDING,
            expires_at=later,
            inviter=owner,
            delivery_status=DeliveryStatus.QUEUED,
        )
    return group


async def _statements(gql: GQL, queries: QueryLog, auth: str, query: str) -> int:
    queries.statements.clear()
    body = await gql.raw(query, auth=auth)
    assert "errors" not in body, body["errors"]
    return len(queries.statements)


async def test_nested_connections_cost_the_same_for_two_groups_or_six(
    gql: GQL, queries: QueryLog
) -> None:
    olivia = await _user("olivia")
    auth = gql.token("olivia", "olivia@acme.com", name="Olivia")
    for n in range(2):
        await _group(n, olivia, members=3, invitations=4)
    two = await _statements(gql, queries, auth, VIEWER_TREE)
    for n in range(2, 6):
        await _group(n, olivia, members=3, invitations=4)
    six = await _statements(gql, queries, auth, VIEWER_TREE)
    # A DataLoader may split a batch in two, depending on when the event loop dispatches
    # it; a query per parent would add at least four statements for four more groups.
    assert six <= two + 1, queries.statements
    assert six <= 13, queries.statements
    # Each page, nested or not, and each count is one statement per level.
    data = await gql(VIEWER_TREE, auth=auth)
    groups = [m["group"] for m in data["viewer"]["memberships"]]
    assert len(groups) == 6
    assert all(g["members"]["totalCount"] == 4 for g in groups)
    assert all(len(g["invitations"]["edges"]) == 4 for g in groups)


async def test_each_parent_gets_its_own_page(gql: GQL, api_key: str) -> None:
    olivia = await _user("olivia")
    small = await _group(0, olivia, members=1, invitations=1)
    big = await _group(1, olivia, members=6, invitations=5)
    query = """{ viewer { memberships { group { externalId
        members(first: 3) { totalCount pageInfo { hasNextPage endCursor } edges { node { user { externalId } } } }
        invitations(first: 2, status: [PENDING]) { totalCount pageInfo { hasNextPage } edges { node { email } } } } } } }"""
    data = await gql(query, auth=gql.token("olivia", "olivia@acme.com"))
    by_id = {m["group"]["externalId"]: m["group"] for m in data["viewer"]["memberships"]}
    assert by_id["g0"]["members"]["totalCount"] == 2
    assert by_id["g0"]["members"]["pageInfo"]["hasNextPage"] is False
    assert by_id["g1"]["members"]["totalCount"] == 7
    assert by_id["g1"]["members"]["pageInfo"]["hasNextPage"] is True
    assert len(by_id["g1"]["members"]["edges"]) == 3
    assert by_id["g1"]["invitations"]["totalCount"] == 5
    assert [len(by_id[g]["invitations"]["edges"]) for g in ("g0", "g1")] == [1, 2]

    # The nested cursor continues the same group's list, newest first, without repeats.
    seen: list[str] = []
    after = None
    while True:
        page = await gql(
            """query($after: String) { group(groupType: "org", groupId: "g1") {
                members(first: 3, after: $after) { pageInfo { hasNextPage endCursor }
                  edges { node { user { externalId } } } } } }""",
            {"after": after},
            auth=api_key,
        )
        members = page["group"]["members"]
        seen += [e["node"]["user"]["externalId"] for e in members["edges"]]
        if not members["pageInfo"]["hasNextPage"]:
            break
        after = members["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(["olivia", *(f"m1x{m}" for m in range(6))])
    assert small.id != big.id


async def test_a_bad_nested_cursor_is_a_clear_error(gql: GQL, api_key: str) -> None:
    await _group(0, await _user("olivia"), members=1, invitations=0)
    body = await gql.raw(
        '{ group(groupType: "org", groupId: "g0") { members(after: "nonsense") { totalCount } } }',
        auth=api_key,
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert body["errors"][0]["path"] == ["group", "members"]


def _hidden(group: dict[str, Any]) -> bool:
    return (
        group["members"] == {"totalCount": 0, "edges": []}
        and group["invitations"] == {"totalCount": 0, "edges": []}
        and group["autojoinDomains"] == []
        and group["autojoinRole"] is None
    )


async def test_an_invitee_sees_the_group_but_not_its_people(gql: GQL, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    invitation = await invite_one(gql, olivia, "ben@example.com")
    ben = gql.token("ben", "ben@example.com")
    data = await gql(
        f"query($id: ID!) {{ invitation(id: $id) {{ group {{ {GROUP_DATA} }} }} }}",
        {"id": invitation["id"]},
        auth=ben,
    )
    group = data["invitation"]["group"]
    assert group["name"] == "Acme"
    assert _hidden(group)


async def test_autojoin_groups_show_nothing_of_their_members(
    gql: GQL, make_group, api_key: str
) -> None:
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    group = await Group.get(external_id="acme")
    await AutojoinDomain.create(
        group=group, domain="acme.com", verification_token="t", verified_at=datetime.now(UTC)
    )
    group.autojoin_role = "member"
    await group.save()
    query = OPEN.replace("autojoinGroups { externalId name }", f"autojoinGroups {{ {GROUP_DATA} }}")
    sam = gql.token("sam", "sam@acme.com")
    data = await gql(query, {"email": "sam@acme.com"}, auth=sam)
    [offered] = data["invitations"]["autojoinGroups"]
    assert offered["name"] == "Acme"
    assert _hidden(offered)
    # The host's backend sees everything.
    data = await gql(query, {"email": "sam@acme.com"}, auth=api_key)
    [offered] = data["invitations"]["autojoinGroups"]
    assert offered["autojoinDomains"] == ["acme.com"]
    assert offered["members"]["totalCount"] == 1


async def test_members_see_members_and_only_managers_see_invitations(gql: GQL, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    await invite_one(gql, olivia, "ben@example.com")
    group = await Group.get(external_id="acme")
    mia = await _user("mia")
    await Membership.create(user=mia, group=group, role="member", joined_via=JoinMethod.INVITATION)
    query = f"{{ viewer {{ memberships {{ group {{ {GROUP_DATA} }} }} }} }}"

    as_member = (await gql(query, auth=gql.token("mia", "mia@acme.com")))["viewer"]
    seen = as_member["memberships"][0]["group"]
    assert seen["members"]["totalCount"] == 2
    assert seen["invitations"] == {"totalCount": 0, "edges": []}

    as_owner = (await gql(query, auth=olivia))["viewer"]
    seen = as_owner["memberships"][0]["group"]
    assert seen["members"]["totalCount"] == 2
    assert seen["invitations"]["totalCount"] == 1
    assert seen["invitations"]["edges"] == [{"node": {"email": "ben@example.com"}}]


async def test_only_those_who_manage_an_invitation_see_its_events(
    gql: GQL, make_group, api_key: str
) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    invitation = await invite_one(gql, olivia, "ben@example.com")
    # An admin edits it: the audit trail now names a second member of the group.
    group = await Group.get(external_id="acme")
    ada = await _user("ada")
    await Membership.create(user=ada, group=group, role="admin", joined_via=JoinMethod.INVITATION)
    edited = await gql(
        'mutation($id: ID!) { updateInvitation(id: $id, input: {message: "Hi"}) { errors { code } } }',
        {"id": invitation["id"]},
        auth=gql.token("ada", "ada@acme.com"),
    )
    assert edited["updateInvitation"]["errors"] == []
    query = """query($id: ID!) { invitation(id: $id) {
        inviter { externalId name } events { type actor { externalId email name } } } }"""

    as_invitee = await gql(
        query, {"id": invitation["id"]}, auth=gql.token("ben", "ben@example.com")
    )
    # The invitee still learns who invited them, and nothing of who else handled it.
    assert as_invitee["invitation"] == {
        "inviter": {"externalId": "olivia", "name": "Olivia"},
        "events": [],
    }
    for manager in (olivia, api_key):
        seen = (await gql(query, {"id": invitation["id"]}, auth=manager))["invitation"]
        actors = [e["actor"]["externalId"] for e in seen["events"]]
        assert actors == ["olivia", "ada"]
