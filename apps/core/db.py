"""Database functions the ORM lacks, portable across PostgreSQL and the demo's SQLite."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, router
from django.db.models import Field, Func, IntegerField, Model


class OctetLength(Func):
    """A text's length in UTF-8 bytes (what token estimates count)."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))",
                           **extra)


def insert_instances(instances: Sequence[Model]) -> None:
    """Insert new model instances of one model, as bulk_create would (each field's pre_save and
    get_db_prep_save, so auto_now and types are as the ORM makes them) but without reading back
    their primary keys: on PostgreSQL with one COPY, which costs a fraction of the CPU of
    bulk_create's INSERT (its SQL is assembled and its parameters formatted row by row)."""
    if not instances:
        return
    model = type(instances[0])
    db = write_connection(model)
    if db.vendor != "postgresql":
        model._default_manager.bulk_create(instances)
        return
    with copy_into(model) as (write_row, fields):
        for instance in instances:
            write_row([f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields])


@contextmanager
def copy_into(model: type[Model]) -> Iterator[tuple[Callable[[Sequence[Any]], None], list[Field]]]:
    """PostgreSQL only: one COPY into the model's table, every concrete field but the primary key.
    Yields the function that writes a row (values prepared for the database, in the order of the
    fields yielded with it)."""
    db = write_connection(model)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    qn = db.ops.quote_name
    sql = (f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
           "FROM STDIN")
    with db.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        yield copy.write_row, fields


def write_connection(model: type[Model]) -> Any:
    """The connection a model is written through, itself: `django.db.connection` is a proxy that
    looks the connection up (through asgiref's thread-local storage) on every attribute read, which
    per field per row was most of the CPU of preparing values for hot-path writes."""
    return connections[router.db_for_write(model)]
