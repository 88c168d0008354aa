from .accept_invitation import (
    AcceptInvitation,
    AcceptInvitationAcceptInvitation,
    AcceptInvitationAcceptInvitationErrors,
    AcceptInvitationAcceptInvitationMemberships,
    AcceptInvitationAcceptInvitationMembershipsGroup,
)
from .async_base_client import AsyncBaseClient
from .autojoin_settings import (
    AutojoinSettings,
    AutojoinSettingsGroup,
    AutojoinSettingsGroupDomains,
)
from .base_model import BaseModel, Upload
from .client import UsherClient
from .create_group import (
    CreateGroup,
    CreateGroupCreateGroup,
    CreateGroupCreateGroupErrors,
    CreateGroupCreateGroupGroup,
)
from .enums import (
    DeliveryStatus,
    EmailKind,
    ErrorCode,
    InvitationEventType,
    InvitationStatus,
    TargetType,
)
from .exceptions import (
    GraphQLClientError,
    GraphQLClientGraphQLError,
    GraphQLClientGraphQLMultiError,
    GraphQLClientHttpError,
    GraphQLClientInvalidResponseError,
)
from .fragments import InvitationFields, UserErrorFields
from .group_invitations import (
    GroupInvitations,
    GroupInvitationsInvitationsByGroup,
    GroupInvitationsInvitationsByGroupEdges,
    GroupInvitationsInvitationsByGroupEdgesNode,
    GroupInvitationsInvitationsByGroupPageInfo,
)
from .group_members import (
    GroupMembers,
    GroupMembersGroup,
    GroupMembersGroupMembers,
    GroupMembersGroupMembersEdges,
    GroupMembersGroupMembersEdgesNode,
    GroupMembersGroupMembersEdgesNodeUser,
    GroupMembersGroupMembersPageInfo,
)
from .input_types import (
    CreateGroupInput,
    CreateInviteLinkInput,
    EmailTemplateInput,
    InvitedByInput,
    InviteeInput,
    InviteInput,
    UpdateGroupInput,
    UpdateInvitationInput,
    WebhookEndpointInput,
)
from .invite import Invite, InviteInvite, InviteInviteErrors, InviteInviteInvitations
from .renew_invitation import (
    RenewInvitation,
    RenewInvitationRenewInvitation,
    RenewInvitationRenewInvitationErrors,
    RenewInvitationRenewInvitationInvitation,
)
from .resend_invitation import (
    ResendInvitation,
    ResendInvitationResendInvitation,
    ResendInvitationResendInvitationErrors,
    ResendInvitationResendInvitationInvitation,
)
from .revoke_invitation import (
    RevokeInvitation,
    RevokeInvitationRevokeInvitation,
    RevokeInvitationRevokeInvitationErrors,
    RevokeInvitationRevokeInvitationInvitation,
)
from .set_autojoin_domains import (
    SetAutojoinDomains,
    SetAutojoinDomainsSetAutojoinDomains,
    SetAutojoinDomainsSetAutojoinDomainsErrors,
    SetAutojoinDomainsSetAutojoinDomainsGroup,
    SetAutojoinDomainsSetAutojoinDomainsGroupDomains,
)
from .signup_preview import SignupPreview, SignupPreviewInvitationByToken
from .verify_autojoin_domain import (
    VerifyAutojoinDomain,
    VerifyAutojoinDomainVerifyAutojoinDomain,
    VerifyAutojoinDomainVerifyAutojoinDomainErrors,
    VerifyAutojoinDomainVerifyAutojoinDomainGroup,
    VerifyAutojoinDomainVerifyAutojoinDomainGroupDomains,
)

__all__ = [
    "AcceptInvitation",
    "AcceptInvitationAcceptInvitation",
    "AcceptInvitationAcceptInvitationErrors",
    "AcceptInvitationAcceptInvitationMemberships",
    "AcceptInvitationAcceptInvitationMembershipsGroup",
    "AsyncBaseClient",
    "AutojoinSettings",
    "AutojoinSettingsGroup",
    "AutojoinSettingsGroupDomains",
    "BaseModel",
    "CreateGroup",
    "CreateGroupCreateGroup",
    "CreateGroupCreateGroupErrors",
    "CreateGroupCreateGroupGroup",
    "CreateGroupInput",
    "CreateInviteLinkInput",
    "DeliveryStatus",
    "EmailKind",
    "EmailTemplateInput",
    "ErrorCode",
    "GraphQLClientError",
    "GraphQLClientGraphQLError",
    "GraphQLClientGraphQLMultiError",
    "GraphQLClientHttpError",
    "GraphQLClientInvalidResponseError",
    "GroupInvitations",
    "GroupInvitationsInvitationsByGroup",
    "GroupInvitationsInvitationsByGroupEdges",
    "GroupInvitationsInvitationsByGroupEdgesNode",
    "GroupInvitationsInvitationsByGroupPageInfo",
    "GroupMembers",
    "GroupMembersGroup",
    "GroupMembersGroupMembers",
    "GroupMembersGroupMembersEdges",
    "GroupMembersGroupMembersEdgesNode",
    "GroupMembersGroupMembersEdgesNodeUser",
    "GroupMembersGroupMembersPageInfo",
    "InvitationEventType",
    "InvitationFields",
    "InvitationStatus",
    "Invite",
    "InviteInput",
    "InviteInvite",
    "InviteInviteErrors",
    "InviteInviteInvitations",
    "InvitedByInput",
    "InviteeInput",
    "RenewInvitation",
    "RenewInvitationRenewInvitation",
    "RenewInvitationRenewInvitationErrors",
    "RenewInvitationRenewInvitationInvitation",
    "ResendInvitation",
    "ResendInvitationResendInvitation",
    "ResendInvitationResendInvitationErrors",
    "ResendInvitationResendInvitationInvitation",
    "RevokeInvitation",
    "RevokeInvitationRevokeInvitation",
    "RevokeInvitationRevokeInvitationErrors",
    "RevokeInvitationRevokeInvitationInvitation",
    "SetAutojoinDomains",
    "SetAutojoinDomainsSetAutojoinDomains",
    "SetAutojoinDomainsSetAutojoinDomainsErrors",
    "SetAutojoinDomainsSetAutojoinDomainsGroup",
    "SetAutojoinDomainsSetAutojoinDomainsGroupDomains",
    "SignupPreview",
    "SignupPreviewInvitationByToken",
    "TargetType",
    "UpdateGroupInput",
    "UpdateInvitationInput",
    "Upload",
    "UserErrorFields",
    "UsherClient",
    "VerifyAutojoinDomain",
    "VerifyAutojoinDomainVerifyAutojoinDomain",
    "VerifyAutojoinDomainVerifyAutojoinDomainErrors",
    "VerifyAutojoinDomainVerifyAutojoinDomainGroup",
    "VerifyAutojoinDomainVerifyAutojoinDomainGroupDomains",
    "WebhookEndpointInput",
]
