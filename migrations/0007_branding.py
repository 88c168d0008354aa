from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.models import EmailKind
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_list_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='EmailTemplate',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='email_templates', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='INVITATION: invitation\nRESEND: resend\nREMINDER: reminder\nACCEPTED_NOTICE: accepted_notice', enum_type=EmailKind, max_length=16)),
                ('locale', fields.CharField(default='', max_length=16)),
                ('subject', fields.CharField(max_length=255)),
                ('html', fields.TextField(unique=False)),
                ('text', fields.TextField(unique=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'email_templates', 'app': 'models', 'unique_together': (('group', 'kind', 'locale'),), 'pk_attr': 'id', 'table_description': 'A group\'s own template for one kind of email, in one language ("" for any).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Group',
            name='locale',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddField(
            model_name='Group',
            name='mail_from_name',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Group',
            name='reply_to',
            field=fields.CharField(null=True, max_length=320),
        ),
        ops.AddField(
            model_name='Invitation',
            name='locale',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddField(
            model_name='Invitation',
            name='subject',
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddField(
            model_name='Membership',
            name='metadata',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
