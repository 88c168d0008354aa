"""Background work: delivery, expiry, the outbox relay; on arq or in-process."""
