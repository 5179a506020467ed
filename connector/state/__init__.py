"""The state store, its migrations, and the shared rate limiter kept in it."""
