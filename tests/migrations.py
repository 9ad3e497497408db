"""Moving the test database along the migration graph (the migration tests, PostgreSQL)."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(*targets: tuple[str, str]) -> MigrationExecutor:
    """Migrate to ``targets`` (app, migration) and return the executor that did it."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))
    return executor


def latest() -> list[tuple[str, str]]:
    """The leaf migrations: the latest state, to return to after a test went back."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()
