from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_quota_counters')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='email_verified',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        # On SQLite, 0002's AlterFields rebuilt `outbox` without its index on `sent_at`
        # (the relay's scan); PostgreSQL kept it under this name.
        ops.RunSQL(
            'CREATE INDEX IF NOT EXISTS "idx_outbox_sent_at_7dc9f3" ON "outbox" ("sent_at")',
            reverse_sql="SELECT 1",
        ),
    ]
