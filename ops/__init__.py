"""Operations: settings, the local stack, the ``healthbus`` CLI, benchmarks and the demo."""
