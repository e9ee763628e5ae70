"""Contracts: the Avro schemas of every event, the topic catalogue and the pipeline declaration.

The ``.avsc`` files beside this module are the single source of truth for what travels on the bus;
``schema_set`` loads them, ``serde`` puts them on the wire, ``topics`` says where they travel and
``pipeline`` which stage reads and writes what.
"""
