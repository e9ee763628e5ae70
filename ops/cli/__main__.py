"""``python -m ops.cli``: the ``healthbus`` command (workers and sinks are started this way)."""

from ops.cli.app import entrypoint

entrypoint()
