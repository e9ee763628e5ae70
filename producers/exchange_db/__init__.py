"""The exchange databases (前置库) hospitals and county platforms write to, as documented DDL."""
