"""Helpers that start real services (the Kafka broker) for tests and benchmarks."""
