"""The inbox: each message applied once, in the handler's own transaction, then acked."""
