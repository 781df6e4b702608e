"""The docs-test harness: extract what the pages render, classify each code
block, check it, and report. The pytest files in tests/ are a thin layer over
this library."""
