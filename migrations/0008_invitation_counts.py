"""Kept counts of each group's invitations by stored status, for an O(1) `totalCount`.

Triggers on `invitations` keep `invitation_counts` in the transaction of every insert,
status change and delete, whichever code or SQL makes it. On PostgreSQL they run once
per statement over its transition tables (a sweep of 500 rows is one upsert, taken in
(group, status) order); on SQLite, once per row. Existing rows are counted here, with
writes to `invitations` held off on PostgreSQL while they are.

On SQLite, a later migration that rebuilds `invitations` (an AlterField copies it into a
new table) drops these triggers with the old table: it must create them again
(`_SQLITE` here). tests/test_invitation_counts.py fails when the counts drift.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models import InvitationStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


_SQLITE = """
CREATE TRIGGER invitation_counts_insert AFTER INSERT ON invitations BEGIN
    INSERT INTO invitation_counts (group_id, status, n) VALUES (NEW.group_id, NEW.status, 1)
    ON CONFLICT (group_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER invitation_counts_update AFTER UPDATE OF status, group_id ON invitations
WHEN OLD.status IS NOT NEW.status OR OLD.group_id IS NOT NEW.group_id BEGIN
    UPDATE invitation_counts SET n = n - 1 WHERE group_id = OLD.group_id AND status = OLD.status;
    INSERT INTO invitation_counts (group_id, status, n) VALUES (NEW.group_id, NEW.status, 1)
    ON CONFLICT (group_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER invitation_counts_delete AFTER DELETE ON invitations BEGIN
    UPDATE invitation_counts SET n = n - 1 WHERE group_id = OLD.group_id AND status = OLD.status;
END;
"""

# A delete only lowers counts that still exist: when a group is deleted, its count rows
# may go before its invitations do.
_POSTGRES = """
LOCK TABLE invitations IN SHARE ROW EXCLUSIVE MODE;
CREATE FUNCTION invitation_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invitation_counts (group_id, status, n)
    SELECT group_id, status, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (group_id, status) DO UPDATE SET n = invitation_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE FUNCTION invitation_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invitation_counts (group_id, status, n)
    SELECT group_id, status, sum(d) FROM (
        SELECT group_id, status, -count(*) AS d FROM old_rows GROUP BY 1, 2
        UNION ALL
        SELECT group_id, status, count(*) FROM new_rows GROUP BY 1, 2
    ) AS moved GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
    ON CONFLICT (group_id, status) DO UPDATE SET n = invitation_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE FUNCTION invitation_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE invitation_counts AS c SET n = c.n - gone.n
    FROM (SELECT group_id, status, count(*) AS n FROM old_rows GROUP BY 1, 2) AS gone
    WHERE c.group_id = gone.group_id AND c.status = gone.status;
    RETURN NULL;
END $$;
CREATE TRIGGER invitation_counts_insert AFTER INSERT ON invitations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invitation_counts_add();
CREATE TRIGGER invitation_counts_update AFTER UPDATE ON invitations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION invitation_counts_move();
CREATE TRIGGER invitation_counts_delete AFTER DELETE ON invitations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION invitation_counts_remove();
"""

_BACKFILL = """
INSERT INTO invitation_counts (group_id, status, n)
SELECT group_id, status, count(*) FROM invitations GROUP BY group_id, status;
"""


async def _keep_counts(apps, schema_editor) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    await client.execute_script((_POSTGRES if postgres else _SQLITE) + _BACKFILL)


async def _drop_counters(apps, schema_editor) -> None:
    client = schema_editor.client
    script = "".join(
        f"DROP TRIGGER IF EXISTS invitation_counts_{event}"
        + (" ON invitations;" if client.capabilities.dialect == "postgres" else ";")
        for event in ("insert", "update", "delete")
    )
    if client.capabilities.dialect == "postgres":
        script += "DROP FUNCTION IF EXISTS invitation_counts_add, invitation_counts_move, invitation_counts_remove;"
    await client.execute_script(script)


class Migration(migrations.Migration):
    dependencies = [('models', '0007_branding')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InvitationCount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='invitation_counts', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(description='DRAFT: draft\nPENDING: pending\nACCEPTED: accepted\nDECLINED: declined\nEXPIRED: expired\nREVOKED: revoked', enum_type=InvitationStatus, max_length=16)),
                ('n', fields.IntField(default=0)),
            ],
            options={'table': 'invitation_counts', 'app': 'models', 'unique_together': (('group', 'status'),), 'pk_attr': 'id', 'table_description': 'How many invitations a group holds in one stored status.'},
            bases=['Model'],
        ),
        ops.AddIndex(
            model_name='Invitation',
            index=Index(fields=['group_id', 'status', 'expires_at']),
        ),
        ops.RunPython(_keep_counts, _drop_counters),
    ]
