"""Database functions the ORM lacks, portable across PostgreSQL and the demo's SQLite."""

from typing import Any

from django.db.models import Func, IntegerField


class OctetLength(Func):
    """A text's length in UTF-8 bytes (what token estimates count)."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))",
                           **extra)
