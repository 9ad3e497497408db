"""A version number for the definitions the tracking path caches (PostgreSQL only).

Every hit reads its advertiser's token, its offer's rules and its events. They change
rarely, so each process keeps them in memory (offers/definitions.py); what makes that
safe is this one-row table. A statement trigger on advertisers, offers and events sets a
new version in the same transaction as any write to them (the admin, the API, a shell,
raw SQL, a test's flush alike), and the tracking path reads the version in the statement
it runs anyway: a different number than the cache's, and the process drops its cache.

The numbers come from a sequence, so they never repeat, even when a transaction that set
one rolls back; the row itself is transactional, so nobody sees a new number before the
change behind it is committed. The table is not a model: a flush of the test database
must not empty it.

On SQLite nothing is created and nothing is cached across requests (there the reads are
in-process and cheap, and SQLite's table rebuilds on ALTER would drop triggers silently).
"""

from django.db import migrations

TABLES = ("offers_advertiser", "offers_offer", "offers_event")

CREATE = """
CREATE SEQUENCE IF NOT EXISTS offers_definitions_version_seq;
CREATE TABLE IF NOT EXISTS offers_definitions_version (
    id smallint NOT NULL,
    version bigint NOT NULL,
    CONSTRAINT definitions_version_pkey PRIMARY KEY (id),
    CONSTRAINT definitions_version_one_row CHECK (id = 1)
);
INSERT INTO offers_definitions_version (id, version)
VALUES (1, nextval('offers_definitions_version_seq'))
ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION offers_definitions_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE offers_definitions_version
    SET version = nextval('offers_definitions_version_seq')
    WHERE id = 1;
    RETURN NULL;
END;
$$;
"""

TRIGGER = """
CREATE OR REPLACE TRIGGER {table}_definitions_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION offers_definitions_changed();
"""

DROP = """
DROP TRIGGER IF EXISTS {table}_definitions_changed ON {table};
"""

DROP_TABLE = """
DROP FUNCTION IF EXISTS offers_definitions_changed();
DROP TABLE IF EXISTS offers_definitions_version;
DROP SEQUENCE IF EXISTS offers_definitions_version_seq;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(CREATE)
        for table in TABLES:
            cursor.execute(TRIGGER.format(table=table))


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(DROP.format(table=table))
        cursor.execute(DROP_TABLE)


class Migration(migrations.Migration):
    dependencies = [("offers", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
