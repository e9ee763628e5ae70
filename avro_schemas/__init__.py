"""Contracts: the Avro schemas of every event and the topic catalogue.

The ``.avsc`` files beside this module are the single source of truth for what travels on the bus;
``schema_set`` loads them, ``serde`` puts them on the wire, ``topics`` says where they travel.
"""
