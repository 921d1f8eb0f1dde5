"""Authentication and TLS for every listener (docs/security.md, ADR 0013).

`tokens` reads the tokens file into a `TokenStore` (a dict of sha256 digests, reloaded when
the file changes); `principal` is who a request is; `http` guards Starlette routes and
`grpc` the OTLP/gRPC methods; `errors` answers refusals in each API's own envelope;
`tls` turns the `server.tls` settings into what uvicorn and grpcio take.
"""
