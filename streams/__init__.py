"""Stream processing: pure core functions (standards, matching, validation, routing, detection) and the
Faust stages that run them between topics."""
