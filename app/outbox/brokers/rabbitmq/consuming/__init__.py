"""Consuming from RabbitMQ: deliveries, and the dead-letter copy of a poison message."""
