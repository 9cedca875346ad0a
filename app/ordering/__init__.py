"""The ordering service: takes orders and announces them through its outbox."""
