"""The read models' schema now lives in ``spane_core.readmodel.schema``, where every service may import it.

Kept as an alias for ``projector.py``'s import until that module is next edited; new code imports the core.
"""

from spane_core.readmodel.schema import MIGRATIONS, migrate, schema_version

__all__ = ["MIGRATIONS", "migrate", "schema_version"]
