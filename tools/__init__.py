"""Maintainer tools, not shipped and not run by the tests: the extractors that regenerate the versioned name
lists in ``bootstrap_agent/data/names/`` from upstream sources (see ``SOURCES.md`` there)."""
