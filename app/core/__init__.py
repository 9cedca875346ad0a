"""What every part of the demo shares: settings, logging, tracing, schemas, migrations."""
