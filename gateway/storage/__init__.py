"""The hub's persistence: schema, migrations, and the queries of each record kind."""
