"""SPANE's projector: folds the event log into the Postgres read models (``spane_core.readmodel``)."""

from spane_projector.projector import Projector, ProjectorStats

__all__ = ["Projector", "ProjectorStats"]
