"""Operations: the ``healthbus`` CLI (``cli/``), the local stack (``stack/``), status and lag, topic administration
and ACLs, benchmarks (``bench/``) and the demo. The top layer: it may use every package below it."""
