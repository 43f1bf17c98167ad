"""Secrets at rest: only ciphertext in the database, only the suffix ever shown."""

from django.db import connection

from apps.keys.services import key_secret
from tests.keys.conftest import GOOD_SECRET


def test_the_database_holds_no_plaintext_secret(owner, make_key):
    make_key(owner)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM keys_providerkey")
        rows = cursor.fetchall()
    assert len(rows) == 1
    assert GOOD_SECRET not in " ".join(str(value) for value in rows[0])
    # Not even a recognisable piece of it beyond the suffix.
    assert GOOD_SECRET[:-4] not in " ".join(str(value) for value in rows[0])


def test_the_suffix_is_the_last_four_characters(owner, make_key):
    assert make_key(owner).suffix == GOOD_SECRET[-4:]


def test_the_stored_ciphertext_decrypts_to_the_secret(owner, make_key):
    assert key_secret(key=make_key(owner)) == GOOD_SECRET
