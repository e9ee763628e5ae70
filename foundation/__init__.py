"""What every layer above uses: settings, the Kafka producer configuration, the metrics server, dead letters
and their replay, source authentication, the append-only guard, the ClickHouse connection, reading the files
people export (``text_files``) and the national code sets (``standards/``). It imports only the contracts (``avro_schemas``)."""
