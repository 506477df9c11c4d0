"""HTTP routes, one module per noun. ``/api/webhooks``, SSE, the DLQ and schedules get modules of their own."""
