"""Stream processing: pure core functions (matching, validation, routing, detection) and the Faust stages that
run them between topics, each beside its capability (identity, quality, routing, surveillance)."""
