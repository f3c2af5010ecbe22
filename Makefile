# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Each sets up what it needs first (scripts/setup.sh) and can be run again at any time.

.PHONY: demo test setup lint bench-bus clean

demo:
	scripts/setup.sh
	.venv/bin/ibet demo

test:
	scripts/setup.sh --test
	.venv/bin/python -m pytest

setup:
	scripts/setup.sh --test

lint:
	scripts/setup.sh --test
	.venv/bin/ruff check ibet ibet_app ibet_testing ingest detect fuse alerts console sim models tests

bench-bus:
	scripts/setup.sh --test
	.venv/bin/ibet bench bus

clean:
	rm -rf .venv reports .pytest_cache .hypothesis
