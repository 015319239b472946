"""ExtractDeadLetterFunction: tracks whose extraction used up its retries are marked failed (handler)."""
