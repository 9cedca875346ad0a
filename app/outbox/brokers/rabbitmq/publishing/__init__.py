"""Publishing outbox rows to RabbitMQ with publisher confirms."""
