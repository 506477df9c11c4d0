"""Observing executions: trace context and spans derived from the log, metrics, structured logs."""
