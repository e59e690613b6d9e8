"""Evaluation stage: metrics for every task type (`metrics`) and the leaderboard report (`report`).

`metrics` holds pure functions (arrays in, JSON-serialisable dicts out); `report` reads the
`metrics.json` files of all runs and writes the leaderboard CSV, Markdown and HTML with figures.
"""
