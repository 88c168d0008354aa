"""Autojoin domains carry a verification token and the time they were verified.

Domains listed before this migration were never verified: each gets a token of its own
and stays unverified, offering nobody autojoin until its group proves it owns it.
"""

import secrets

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def _give_tokens(apps, schema_editor) -> None:
    client = schema_editor.client
    marker = "$1" if client.capabilities.dialect == "postgres" else "?"
    marker2 = "$2" if marker == "$1" else "?"
    _, rows = await client.execute_query("SELECT id FROM autojoin_domains")
    for row in rows:
        await client.execute_query(
            f"UPDATE autojoin_domains SET verification_token = {marker} WHERE id = {marker2}",
            [secrets.token_urlsafe(24), row["id"]],
        )


async def _restore_sqlite_keys(apps, schema_editor) -> None:
    # On SQLite, AlterField rebuilds the table without its unique (group, domain) key and
    # its domain index; put them back under the names the first migration gave them.
    client = schema_editor.client
    if client.capabilities.dialect != "sqlite":
        return
    await client.execute_script(
        'CREATE UNIQUE INDEX IF NOT EXISTS "uid_autojoin_do_group_i_fbffb2" '
        'ON "autojoin_domains" ("group_id", "domain");'
        'CREATE INDEX IF NOT EXISTS "idx_autojoin_do_domain_82d14d" '
        'ON "autojoin_domains" ("domain");'
    )


class Migration(migrations.Migration):
    dependencies = [('models', '0002_events_and_webhooks')]

    initial = False

    operations = [
        ops.AddField(
            model_name='AutojoinDomain',
            name='verification_token',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.RunPython(_give_tokens, ops.RunPython.noop),
        ops.AlterField(
            model_name='AutojoinDomain',
            name='verification_token',
            field=fields.CharField(max_length=64),
        ),
        ops.RunPython(_restore_sqlite_keys, ops.RunPython.noop),
        ops.AddField(
            model_name='AutojoinDomain',
            name='verified_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
