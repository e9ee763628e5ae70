"""National standards as plain functions: identifiers (GB 11643, GB 32100) and code sets (docs/domain.md)."""
