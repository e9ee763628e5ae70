"""How healthbus runs Faust: the app factory, a faster consumer transport, and the batch agent.

Faust is the stream framework, but its stock per-message path costs ~10x what the broker can deliver here
(docs/faust-throughput.md has the measurements and causes). The fixes live in this package, each behind a
public Faust extension point (the ``Monitor`` and ``broker_consumer`` settings, a Worker subclass), so the
stages themselves stay plain functions over batches.
"""
