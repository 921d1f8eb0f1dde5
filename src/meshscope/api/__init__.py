"""HTTP routes only: parse parameters, call the query layer, shape the response."""
