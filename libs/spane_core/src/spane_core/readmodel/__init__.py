"""The Postgres read models, shared by every service: the schema and its migrations (``schema``), and the
statements that write (``writes``) and read (``reads``) its tables."""

from spane_core.readmodel.schema import MIGRATIONS, migrate, schema_version

__all__ = ["MIGRATIONS", "migrate", "schema_version"]
