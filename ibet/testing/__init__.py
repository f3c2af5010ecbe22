"""Helpers that start real services (Apache Kafka, PostgreSQL) for tests and benchmarks."""
