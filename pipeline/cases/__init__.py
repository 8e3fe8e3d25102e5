"""Cases: stable ids, aggregation of hits into cases, and the case store."""
