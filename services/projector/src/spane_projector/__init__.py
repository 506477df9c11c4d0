"""SPANE's projector: folds the event log into the Postgres read models."""

from spane_projector.projector import Projector, ProjectorStats
from spane_projector.schema import MIGRATIONS, migrate, schema_version

__all__ = ["MIGRATIONS", "Projector", "ProjectorStats", "migrate", "schema_version"]
