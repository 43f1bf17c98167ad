"""PostgreSQL refuses every UPDATE and DELETE of an audit row (the application never makes one; this
makes sure no one else does through it either). TRUNCATE is left to the database's owner (the test
runner's flush uses it). SQLite (`manage.py demo` only) gets no trigger."""

from typing import Any

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_records_append_only
    BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records;
DROP FUNCTION IF EXISTS audit_records_append_only();
"""


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_records")]
    operations = [migrations.RunPython(forwards, backwards)]
