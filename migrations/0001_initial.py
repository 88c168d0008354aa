from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.models import DeliveryStatus, EventType, InvitationStatus, JoinMethod, MessageKind, TargetType
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('prefix', fields.CharField(max_length=16)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_keys', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A credential for the host app backend. Only a hash of the key is kept.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Group',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('type', fields.CharField(max_length=64)),
                ('external_id', fields.CharField(max_length=255)),
                ('name', fields.CharField(max_length=255)),
                ('autojoin_role', fields.CharField(null=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'groups', 'app': 'models', 'unique_together': (('type', 'external_id'),), 'pk_attr': 'id', 'table_description': 'An organization, workspace, board…: whatever the host app invites people into.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AutojoinDomain',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='autojoin_domains', on_delete=OnDelete.CASCADE)),
                ('domain', fields.CharField(db_index=True, max_length=255)),
            ],
            options={'table': 'autojoin_domains', 'app': 'models', 'unique_together': (('group', 'domain'),), 'pk_attr': 'id', 'table_description': 'An email domain whose verified users may join a group without an invitation.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('external_id', fields.CharField(unique=True, max_length=255)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('name', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A person known from a JWT `sub`, created on first sight, never by an invitation.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Invitation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.CASCADE)),
                ('target_type', fields.CharEnumField(description='EMAIL: email\nLINK: link', enum_type=TargetType, max_length=8)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('email_key', fields.CharField(null=True, db_index=True, max_length=320)),
                ('open_key', fields.CharField(null=True, max_length=320)),
                ('first_name', fields.CharField(null=True, max_length=255)),
                ('last_name', fields.CharField(null=True, max_length=255)),
                ('role', fields.CharField(max_length=64)),
                ('permissions', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('message', fields.TextField(null=True, unique=False)),
                ('metadata', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('return_to', fields.CharField(null=True, max_length=2048)),
                ('status', fields.CharEnumField(db_index=True, description='DRAFT: draft\nPENDING: pending\nACCEPTED: accepted\nDECLINED: declined\nEXPIRED: expired\nREVOKED: revoked', enum_type=InvitationStatus, max_length=16)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('inviter', fields.ForeignKeyField('models.User', source_field='inviter_id', null=True, db_constraint=True, to_field='id', related_name='sent_invitations', on_delete=OnDelete.SET_NULL)),
                ('inviter_api_key', fields.ForeignKeyField('models.ApiKey', source_field='inviter_api_key_id', null=True, db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.SET_NULL)),
                ('accepted_by', fields.ForeignKeyField('models.User', source_field='accepted_by_id', null=True, db_constraint=True, to_field='id', related_name='accepted_invitations', on_delete=OnDelete.SET_NULL)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('send_email', fields.BooleanField(default=True)),
                ('delivery_status', fields.CharEnumField(description='NOT_SENT: not_sent\nQUEUED: queued\nSENT: sent\nFAILED: failed\nDISABLED: disabled', enum_type=DeliveryStatus, max_length=16)),
                ('delivery_error', fields.TextField(null=True, unique=False)),
                ('message_id', fields.CharField(null=True, max_length=255)),
                ('send_count', fields.IntField(default=0)),
                ('last_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reminder_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('token_version', fields.IntField(default=1)),
                ('max_uses', fields.IntField(null=True)),
                ('use_count', fields.IntField(default=0)),
            ],
            options={'table': 'invitations', 'app': 'models', 'unique_together': (('group', 'open_key'),), 'pk_attr': 'id', 'table_description': 'An invitation: a record, never a user, until someone accepts it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InvitationEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('invitation', fields.ForeignKeyField('models.Invitation', source_field='invitation_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('type', fields.CharEnumField(description='CREATED: created\nSENT: sent\nDELIVERY_FAILED: delivery_failed\nRESENT: resent\nRENEWED: renewed\nUPDATED: updated\nREVOKED: revoked\nDECLINED: declined\nACCEPTED: accepted\nEXPIRED: expired\nREMINDED: reminded', enum_type=EventType, max_length=32)),
                ('actor_user', fields.ForeignKeyField('models.User', source_field='actor_user_id', null=True, db_constraint=True, to_field='id', related_name='invitation_events', on_delete=OnDelete.SET_NULL)),
                ('actor_api_key', fields.ForeignKeyField('models.ApiKey', source_field='actor_api_key_id', null=True, db_constraint=True, to_field='id', related_name='invitation_events', on_delete=OnDelete.SET_NULL)),
                ('detail', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'invitation_events', 'app': 'models', 'pk_attr': 'id', 'table_description': "An entry in an invitation's audit trail."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InvitationUse',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('invitation', fields.ForeignKeyField('models.Invitation', source_field='invitation_id', db_constraint=True, to_field='id', related_name='uses', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='invitation_uses', on_delete=OnDelete.CASCADE)),
                ('used_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'invitation_uses', 'app': 'models', 'unique_together': (('invitation', 'user'),), 'pk_attr': 'id', 'table_description': "One user's acceptance of a LINK invitation (each user counts once)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Membership',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(max_length=64)),
                ('permissions', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('joined_via', fields.CharEnumField(description='CREATOR: creator\nINVITATION: invitation\nAUTOJOIN: autojoin', enum_type=JoinMethod, max_length=16)),
                ('invitation_id', fields.UUIDField(null=True)),
                ('joined_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'memberships', 'app': 'models', 'unique_together': (('user', 'group'),), 'pk_attr': 'id', 'table_description': "A user's place in a group, with a role."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(description='INVITATION: invitation\nRESEND: resend\nACCEPTED_NOTICE: accepted_notice\nREMINDER: reminder', enum_type=MessageKind, max_length=32)),
                ('invitation', fields.ForeignKeyField('models.Invitation', source_field='invitation_id', db_constraint=True, to_field='id', related_name='outbox', on_delete=OnDelete.CASCADE)),
                ('token_version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('enqueued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('failed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('last_error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'outbox', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An email to send, written in the same transaction as the change that calls for it.'},
            bases=['Model'],
        ),
    ]
