"""The pure engine: scoring, routing and diff. No I/O, no clock, no globals; everything arrives as arguments."""
