"""The API's one error shape, ``{"error": {"code", "message", "details"}}``, for every failure."""

from __future__ import annotations

from typing import Any

from aiohttp import web

# Headers that describe the exception's own (text) body, which the JSON body replaces.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error shape itself, for responses and for a streamed body that must end with an error."""
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    return web.json_response(error_body(code, message, details), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn aiohttp's HTML error pages and unexpected exceptions into the JSON error shape."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.text or exc.reason)
        # What the exception says in headers stays: a 405's Allow (RFC 9110), a 429's Retry-After.
        for name, value in exc.headers.items():
            if name.lower() not in _BODY_HEADERS:
                response.headers[name] = value
        return response
    except Exception:
        request.app.logger.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "unexpected server error; see the appliance log")
