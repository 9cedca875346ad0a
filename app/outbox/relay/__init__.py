"""The relay: claims pending outbox rows, publishes them with confirms, marks them."""
