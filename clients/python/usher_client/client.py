from typing import Any, Optional, Union

from .accept_invitation import AcceptInvitation
from .async_base_client import AsyncBaseClient
from .autojoin_settings import AutojoinSettings
from .base_model import UNSET, UnsetType
from .create_group import CreateGroup
from .enums import InvitationStatus
from .group_invitations import GroupInvitations
from .group_members import GroupMembers
from .input_types import CreateGroupInput, InviteInput
from .invite import Invite
from .renew_invitation import RenewInvitation
from .resend_invitation import ResendInvitation
from .revoke_invitation import RevokeInvitation
from .set_autojoin_domains import SetAutojoinDomains
from .signup_preview import SignupPreview
from .verify_autojoin_domain import VerifyAutojoinDomain


def gql(q: str) -> str:
    return q


class UsherClient(AsyncBaseClient):
    async def autojoin_settings(
        self, group_type: str, group_id: str, **kwargs: Any
    ) -> AutojoinSettings:
        query = gql("""
            query AutojoinSettings($groupType: String!, $groupId: String!) {
              group(groupType: $groupType, groupId: $groupId) {
                id
                autojoinRole
                domains {
                  domain
                  verified
                  verificationRecord
                }
              }
            }
            """)
        variables: dict[str, object] = {"groupType": group_type, "groupId": group_id}
        response = await self.execute(
            query=query,
            operation_name="AutojoinSettings",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return AutojoinSettings.model_validate(data)

    async def set_autojoin_domains(
        self,
        group_type: str,
        group_id: str,
        domains: list[str],
        role: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> SetAutojoinDomains:
        query = gql("""
            mutation SetAutojoinDomains($groupType: String!, $groupId: String!, $domains: [String!]!, $role: String) {
              setAutojoinDomains(
                groupType: $groupType
                groupId: $groupId
                domains: $domains
                role: $role
              ) {
                group {
                  id
                  autojoinRole
                  domains {
                    domain
                    verified
                    verificationRecord
                  }
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {
            "groupType": group_type,
            "groupId": group_id,
            "domains": domains,
            "role": role,
        }
        response = await self.execute(
            query=query,
            operation_name="SetAutojoinDomains",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return SetAutojoinDomains.model_validate(data)

    async def verify_autojoin_domain(
        self, group_type: str, group_id: str, domain: str, **kwargs: Any
    ) -> VerifyAutojoinDomain:
        query = gql("""
            mutation VerifyAutojoinDomain($groupType: String!, $groupId: String!, $domain: String!) {
              verifyAutojoinDomain(groupType: $groupType, groupId: $groupId, domain: $domain) {
                group {
                  id
                  domains {
                    domain
                    verified
                  }
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {
            "groupType": group_type,
            "groupId": group_id,
            "domain": domain,
        }
        response = await self.execute(
            query=query,
            operation_name="VerifyAutojoinDomain",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return VerifyAutojoinDomain.model_validate(data)

    async def create_group(self, input: CreateGroupInput, **kwargs: Any) -> CreateGroup:
        query = gql("""
            mutation CreateGroup($input: CreateGroupInput!) {
              createGroup(input: $input) {
                group {
                  id
                  type
                  externalId
                  name
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="CreateGroup", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateGroup.model_validate(data)

    async def invite(self, input: InviteInput, **kwargs: Any) -> Invite:
        query = gql("""
            mutation Invite($input: InviteInput!) {
              invite(input: $input) {
                invitations {
                  ...InvitationFields
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment InvitationFields on Invitation {
              id
              targetType
              email
              role
              status
              deliveryStatus
              expiresAt
              createdAt
              sendCount
              inviteUrl
              metadata
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="Invite", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Invite.model_validate(data)

    async def group_invitations(
        self,
        group_type: str,
        group_id: str,
        status: Union[Optional[list[InvitationStatus]], UnsetType] = UNSET,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> GroupInvitations:
        query = gql("""
            query GroupInvitations($groupType: String!, $groupId: String!, $status: [InvitationStatus!], $first: Int, $after: String) {
              invitationsByGroup(
                groupType: $groupType
                groupId: $groupId
                status: $status
                first: $first
                after: $after
              ) {
                totalCount
                pageInfo {
                  hasNextPage
                  endCursor
                }
                edges {
                  node {
                    ...InvitationFields
                  }
                }
              }
            }

            fragment InvitationFields on Invitation {
              id
              targetType
              email
              role
              status
              deliveryStatus
              expiresAt
              createdAt
              sendCount
              inviteUrl
              metadata
            }
            """)
        variables: dict[str, object] = {
            "groupType": group_type,
            "groupId": group_id,
            "status": status,
            "first": first,
            "after": after,
        }
        response = await self.execute(
            query=query,
            operation_name="GroupInvitations",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return GroupInvitations.model_validate(data)

    async def revoke_invitation(self, id: str, **kwargs: Any) -> RevokeInvitation:
        query = gql("""
            mutation RevokeInvitation($id: ID!) {
              revokeInvitation(id: $id) {
                invitation {
                  ...InvitationFields
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment InvitationFields on Invitation {
              id
              targetType
              email
              role
              status
              deliveryStatus
              expiresAt
              createdAt
              sendCount
              inviteUrl
              metadata
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query,
            operation_name="RevokeInvitation",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RevokeInvitation.model_validate(data)

    async def resend_invitation(self, id: str, **kwargs: Any) -> ResendInvitation:
        query = gql("""
            mutation ResendInvitation($id: ID!) {
              resendInvitation(id: $id) {
                invitation {
                  ...InvitationFields
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment InvitationFields on Invitation {
              id
              targetType
              email
              role
              status
              deliveryStatus
              expiresAt
              createdAt
              sendCount
              inviteUrl
              metadata
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query,
            operation_name="ResendInvitation",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ResendInvitation.model_validate(data)

    async def renew_invitation(
        self,
        id: str,
        resend: bool,
        expires_in_days: Union[Optional[int], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> RenewInvitation:
        query = gql("""
            mutation RenewInvitation($id: ID!, $expiresInDays: Int, $resend: Boolean! = false) {
              renewInvitation(id: $id, expiresInDays: $expiresInDays, resend: $resend) {
                invitation {
                  ...InvitationFields
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment InvitationFields on Invitation {
              id
              targetType
              email
              role
              status
              deliveryStatus
              expiresAt
              createdAt
              sendCount
              inviteUrl
              metadata
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {
            "id": id,
            "expiresInDays": expires_in_days,
            "resend": resend,
        }
        response = await self.execute(
            query=query, operation_name="RenewInvitation", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RenewInvitation.model_validate(data)

    async def group_members(
        self,
        group_type: str,
        group_id: str,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> GroupMembers:
        query = gql("""
            query GroupMembers($groupType: String!, $groupId: String!, $first: Int, $after: String) {
              group(groupType: $groupType, groupId: $groupId) {
                id
                name
                viewerRole
                members(first: $first, after: $after) {
                  totalCount
                  pageInfo {
                    hasNextPage
                    hasPreviousPage
                    startCursor
                    endCursor
                  }
                  edges {
                    cursor
                    node {
                      id
                      role
                      permissions
                      joinedAt
                      user {
                        id
                        name
                        email
                      }
                    }
                  }
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "groupType": group_type,
            "groupId": group_id,
            "first": first,
            "after": after,
        }
        response = await self.execute(
            query=query, operation_name="GroupMembers", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GroupMembers.model_validate(data)

    async def signup_preview(self, token: str, **kwargs: Any) -> SignupPreview:
        query = gql("""
            query SignupPreview($token: String!) {
              invitationByToken(token: $token) {
                status
                targetType
                groupName
                inviterName
                expiresAt
              }
            }
            """)
        variables: dict[str, object] = {"token": token}
        response = await self.execute(
            query=query, operation_name="SignupPreview", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return SignupPreview.model_validate(data)

    async def accept_invitation(self, token: str, **kwargs: Any) -> AcceptInvitation:
        query = gql("""
            mutation AcceptInvitation($token: String!) {
              acceptInvitation(token: $token) {
                memberships {
                  id
                  role
                  permissions
                  joinedAt
                  group {
                    id
                    type
                    externalId
                    name
                  }
                }
                errors {
                  ...UserErrorFields
                }
              }
            }

            fragment UserErrorFields on UserError {
              code
              message
              field
              retryAfter
            }
            """)
        variables: dict[str, object] = {"token": token}
        response = await self.execute(
            query=query,
            operation_name="AcceptInvitation",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return AcceptInvitation.model_validate(data)
