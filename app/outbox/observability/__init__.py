"""Metrics, traces, health probes, log lines and the masking of secrets in them."""
