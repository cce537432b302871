"""FastAPI integration: every request audited by the middleware, the user named by a dependency.

    python examples/fastapi_app.py          # sends a few requests in process and prints their events
    uvicorn examples.fastapi_app:app        # or serve it

Needs `pip install fastapi` beside auditship. Each request yields an API_REQUEST event with its route
template, status, duration and client; a 401 adds an AUTH_FAILURE, a 403 an ACCESS_DENIED.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException

from shipper import AuditConfig, AuditContext, audit_context, audit_user_from, setup_fastapi_audit_middleware

app = FastAPI()
recorder = setup_fastapi_audit_middleware(app, context=AuditContext(service_name="users-api"))


def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
    """The app's own authentication; audit_user_from names its user in the request's event."""
    if authorization != "Bearer secret-token":
        raise HTTPException(status_code=401, detail="not authenticated")
    return "alice"


CurrentUser = Annotated[str, Depends(audit_user_from(current_user))]


@app.get("/api/users/{user_id}")
async def get_user(user_id: str, user: CurrentUser) -> dict[str, str]:
    return {"id": user_id, "name": f"User {user_id}", "viewer": user}


async def main() -> None:
    import httpx

    async with audit_context(AuditConfig(), AuditContext(service_name="users-api")) as audit_logger:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
            ok = await client.get("/api/users/42", headers={"Authorization": "Bearer secret-token"})
            refused = await client.get("/api/users/42")
            print(
                "responses:", ok.status_code, refused.status_code, "request id:", ok.headers["x-request-id"]
            )
    print("requests audited:", recorder.stats.requests)
    async for event in audit_logger.search_events(service_name="users-api"):
        print(f"  {event.event_type:<13} {event.endpoint} {event.status_code} user={event.user_id}")


if __name__ == "__main__":
    asyncio.run(main())
