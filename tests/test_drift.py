"""The committed artefacts match the code: schema.graphql and the migrations."""

from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.autodetector import MigrationAutodetector

from app.config import tortoise_config
from app.graphql.schema import schema

ROOT = Path(__file__).resolve().parent.parent


def test_schema_graphql_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", "schema.graphql is stale: run `usher export-schema`"


def test_every_type_and_field_is_described() -> None:
    from graphql import GraphQLInputObjectType, GraphQLObjectType

    missing = []
    for name, gtype in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        if not gtype.description:
            missing.append(name)
        if isinstance(gtype, GraphQLObjectType | GraphQLInputObjectType):
            for field_name, field in gtype.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []


async def test_migrations_match_the_models(database: str) -> None:
    apps = tortoise_config(database)["apps"]
    writers = await MigrationAutodetector(Tortoise.apps, apps).changes()
    assert [w.name for w in writers] == [], "models changed: run `tortoise makemigrations`"
