"""meshscope's web UI: static assets (plain ES modules, vendored libraries) and their routes."""
