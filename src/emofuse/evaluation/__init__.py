"""Metrics, results files and reports."""
