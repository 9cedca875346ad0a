"""What operators see and repair: the outbox's failed rows, the dead-letter queues, the
inbox; one set of operations behind the CLI (``python -m app outbox|dlq|inbox …``) and the
admin API (``/admin/api/{service}/…``)."""
