// How an SPA calls Usher with the generated types: any fetch-based client will do.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";

import { AcceptInvitationDocument, GroupMembersDocument, SignupPreviewDocument } from "./gql/graphql";
import type { GroupMembersQuery, InvitationStatus } from "./gql/graphql";

export async function request<R, V>(
  url: string,
  document: TypedDocumentNode<R, V>,
  variables: V,
  token?: string,
): Promise<R> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as { data?: R; errors?: { message: string }[] };
  if (body.errors?.length || !body.data) {
    throw new Error(body.errors?.map((e) => e.message).join("; ") ?? `HTTP ${response.status}`);
  }
  return body.data;
}

/** The signup page: what the invitation is, then accepting it once signed in. */
export async function signup(url: string, inviteToken: string, userJwt: string): Promise<string[]> {
  const { invitationByToken: preview } = await request(url, SignupPreviewDocument, {
    token: inviteToken,
  });
  if (!preview) return ["This link does not work."];
  const status: InvitationStatus = preview.status;
  if (status !== "PENDING") return [`This invitation is ${status.toLowerCase()}.`];
  const expires: Date = new Date(preview.expiresAt);
  console.log(`${preview.groupName} invites you until ${expires.toLocaleString()}`);

  const { acceptInvitation } = await request(
    url,
    AcceptInvitationDocument,
    { token: inviteToken },
    userJwt,
  );
  return acceptInvitation.errors.map((e) => `${e.code}: ${e.message}`);
}

/** Every member's name, following the cursors. */
export async function memberNames(url: string, jwt: string, groupId: string): Promise<string[]> {
  const names: string[] = [];
  let after: string | null | undefined = null;
  for (;;) {
    const data: GroupMembersQuery = await request(
      url,
      GroupMembersDocument,
      { groupType: "org", groupId, first: 100, after },
      jwt,
    );
    const members = data.group?.members;
    if (!members) return names;
    names.push(...members.edges.map((e) => e.node.user.name ?? e.node.user.email ?? e.node.user.id));
    if (!members.pageInfo.hasNextPage) return names;
    after = members.pageInfo.endCursor;
  }
}
