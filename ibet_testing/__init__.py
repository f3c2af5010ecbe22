"""Real services started for the tests and benchmarks (Apache Kafka, PostgreSQL, an HTTP server in
a thread, Chromium): never imported by the product's runtime (checked by the import contracts in
``pyproject.toml``), only by ``tests/``, ``scripts/`` and ``ibet bench``.
"""
