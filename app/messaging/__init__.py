"""The demo's messaging wiring: which service consumes what, and Settings → library configs."""
