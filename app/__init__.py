"""CloudCrm: two services exchanging events through a transactional outbox and inbox."""
