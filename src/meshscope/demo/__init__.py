"""`meshscope demo`: meshscope plus an example mesh (web -> api -> {cache, db, worker}), each
service behind its own sidecar, with generated traffic and switchable faults."""
