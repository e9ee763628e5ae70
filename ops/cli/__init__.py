"""The ``healthbus`` command: one module per command group, parsing and printing only (ops/cli/app.py joins them)."""
