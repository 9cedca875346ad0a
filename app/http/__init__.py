"""HTTP plumbing of the demo's APIs: the app builder, errors, health, metrics, serving."""
