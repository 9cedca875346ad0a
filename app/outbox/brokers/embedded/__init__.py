"""The embedded broker: one process, no server, queues kept in a SQLite file."""
