"""What an operator asks of and repairs in an outbox or inbox."""
