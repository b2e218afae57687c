"""Who may see the dashboard: whoever holds the cluster token, as for every other way in.

A browser brings it once, in the URL `zray start --head` prints (`/?token=...`, as Jupyter
does); the answer is a redirect to the same URL without it, which sets an HttpOnly,
SameSite=Lax cookie, so the token leaves the address bar and history and scripts on the page
cannot read it. Scripts and Ray-style clients send `Authorization: Bearer <token>` instead
(or, as Ray's token authentication also accepts, `X-Ray-Authorization: Bearer <token>` or the
token itself in the cookie `ray-authentication-token`).
Anything else gets 401 and nothing more, pages, static files and JSON alike.

The cookie holds an HMAC of the token, not the token: a leaked cookie opens this dashboard but
does not let anyone join the cluster. Its name carries the port, because browsers share
cookies between the ports of one host (two clusters on one machine would overwrite each
other's). SameSite=Lax keeps it off cross-site requests other than top-level navigation, so
another site can neither read pages nor POST on the user's behalf (the Jobs API will accept
POSTs).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

TOKEN_PARAM = "token"
UNAUTHORIZED = "401: Unauthorized"
RAY_AUTHORIZATION_HEADER = "X-Ray-Authorization"
RAY_TOKEN_COOKIE = "ray-authentication-token"


class Guard:
    def __init__(self, token: str, port: int):
        self._token = token.encode()
        self.cookie_name = f"zray_dashboard_{port}"
        self._cookie_value = hmac.new(
            self._token, b"zray-dashboard-cookie", hashlib.sha256
        ).hexdigest()

    def _is_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def allowed(self, request: web.Request) -> bool:
        # Ray's token authentication sends the token in any of these (its SDK's `headers=`
        # and `cookies=` arguments reach them): Authorization, X-Ray-Authorization, or the
        # raw token in the cookie `ray-authentication-token`.
        for name in ("Authorization", RAY_AUTHORIZATION_HEADER):
            header = request.headers.get(name, "")
            if header.startswith("Bearer ") and self._is_token(header[len("Bearer ") :].strip()):
                return True
        ray_cookie = request.cookies.get(RAY_TOKEN_COOKIE, "")
        if ray_cookie and self._is_token(ray_cookie):
            return True
        cookie = request.cookies.get(self.cookie_name, "")
        return bool(cookie) and hmac.compare_digest(cookie, self._cookie_value)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        given = request.query.get(TOKEN_PARAM)
        if given is not None:
            if not self._is_token(given):
                return unauthorized()
            # Trade the token in the URL for the cookie, and show the URL without it.
            query = [(k, v) for k, v in request.query.items() if k != TOKEN_PARAM]
            clean = request.rel_url.with_query(query)
            response = web.HTTPFound(str(clean))
            response.set_cookie(
                self.cookie_name,
                self._cookie_value,
                httponly=True,
                samesite="Lax",
                path="/",
            )
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response
        if not self.allowed(request):
            return unauthorized()
        return await handler(request)


def unauthorized() -> web.Response:
    return web.Response(status=401, text=UNAUTHORIZED, headers={"Cache-Control": "no-store"})
