"""Data-quality gates (Great Expectations) and their reports."""
