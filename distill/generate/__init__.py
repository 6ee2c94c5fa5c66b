"""The synthetic-data sampler (`distill generate`)."""
