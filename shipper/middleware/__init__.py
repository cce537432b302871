"""Auditing without touching handlers: Starlette/FastAPI middleware and gRPC server interceptors.

Import the part you use: `shipper.middleware.asgi` needs `auditship[starlette]`,
`shipper.middleware.grpc_server` needs `auditship[grpc]`; this package and its config, recorder and
helpers import neither. The public names are also available from `shipper` itself.
"""
