"""Where the outbox and inbox rows live: tables, schema steps, engines, the database clock,
retention, and what a database error means."""
