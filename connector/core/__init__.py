"""The common model, errors, clock and retry policy every other layer builds on."""
