"""`meshscope node`: the JSON-lines protocol of the seed tasks, a thin adapter over the core."""
