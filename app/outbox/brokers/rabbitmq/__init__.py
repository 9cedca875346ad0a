"""The broker on RabbitMQ (aio-pika and aiormq): connections, topology, publishing with
confirms, consuming, dead letters."""
