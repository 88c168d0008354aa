from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_user_email_verified')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Invitation',
            index=Index(fields=['group_id', 'created_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Invitation',
            index=Index(fields=['group_id', 'status', 'created_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Event',
            index=Index(fields=['invitation_id']),
        ),
        ops.AddIndex(
            model_name='InvitationEvent',
            index=Index(fields=['invitation_id', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Membership',
            index=Index(fields=['group_id', 'joined_at', 'id']),
        ),
        ops.AddIndex(
            model_name='OutboxMessage',
            index=Index(fields=['invitation_id']),
        ),
    ]
