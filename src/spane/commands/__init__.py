"""The client commands of ``spane`` (apply, run, executions, watch, pause/resume/cancel, dlq) over ``spane.client``."""
