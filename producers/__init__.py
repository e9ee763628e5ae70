"""Adapters: capture what hospitals and county platforms write to their exchange databases and publish it
as Avro events to the raw topics. ``publisher`` is the one way onto the bus."""
