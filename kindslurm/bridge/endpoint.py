"""The kubelet endpoint the outer API server calls for logs, exec, attach and
port-forward: HTTPS on the node's advertised address and port.

aiohttp, because it streams a response chunk by chunk (follow-mode logs) and
hands over an upgraded connection (SPDY), and speaks WebSocket. Every request
is authenticated as a kubelet does it: a client certificate of the outer CA
(the API server's kubelet client certificate), or a bearer token through a
TokenReview; then a SubjectAccessReview asks whether that user may use
`nodes/proxy` of the pod's node (the kubelet's webhook authorization).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from kindslurm.bridge import logs, streaming
from kindslurm.bridge.controller import Controller
from kindslurm.bridge.inner import InnerAPIs, NotReachable
from kindslurm.bridge.outer import Outer
from kindslurm.bridge.tracked import Tracked
from kindslurm.errors import OuterAPIError
from kindslurm.podfiles import PodFiles

log = logging.getLogger("kindslurm.bridge")
VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
DECISION_TTL = 60.0
CACHE_LIMIT = 4096  # remembered tokens and decisions: a flood of new ones cannot grow memory
User = tuple[str, list[str], "str | None"]


def cert_user(cert: dict[str, Any] | None) -> User | None:
    """A verified client certificate's user (CN) and groups (O), as the API server reads them."""
    if not cert:
        return None
    names = [(k, v) for rdn in cert.get("subject") or () for k, v in rdn]
    cn = next((v for k, v in names if k == "commonName"), None)
    return (cn, [v for k, v in names if k == "organizationName"], None) if cn else None


class Endpoint:
    def __init__(self, outer: Outer, controller: Controller, inners: InnerAPIs) -> None:
        self.outer = outer
        self.controller = controller
        self.inners = inners
        self.decisions: dict[tuple[str, str, str], tuple[float, bool]] = {}
        self.tokens: dict[str, tuple[float, User | None]] = {}
        self.session: aiohttp.ClientSession | None = None

    # -- who is asking ------------------------------------------------------
    async def _user(self, request: web.Request) -> User | None:
        transport = request.transport
        user = cert_user(transport.get_extra_info("peercert") if transport is not None else None)
        if user is not None:
            return user
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        token = auth[7:].strip()
        seen = self.tokens.get(token)
        if seen is not None and time.monotonic() - seen[0] < DECISION_TTL:
            return seen[1]
        found = await asyncio.to_thread(self.outer.token_user, token)
        if len(self.tokens) >= CACHE_LIMIT:
            self.tokens.clear()
        self.tokens[token] = (time.monotonic(), found)
        return found

    async def _authorize(self, request: web.Request, node: str) -> None:
        user = await self._user(request)
        if user is None:
            raise web.HTTPUnauthorized(text="Unauthorized: present a client certificate of the cluster's CA or a token")
        verb = VERBS.get(request.method, "get")
        key = (user[0], verb, node)
        seen = self.decisions.get(key)
        if seen is None or time.monotonic() - seen[0] >= DECISION_TTL:
            try:
                allowed = await asyncio.to_thread(self.outer.allowed, user[0], user[1], user[2], verb, node)
            except OuterAPIError as e:
                raise web.HTTPServiceUnavailable(text=f"cannot review access: {e}") from None
            seen = (time.monotonic(), allowed)
            if len(self.decisions) >= CACHE_LIMIT:
                self.decisions.clear()
            self.decisions[key] = seen
        if not seen[1]:
            raise web.HTTPForbidden(text=f"Forbidden (user={user[0]}, verb={verb}, resource=nodes, "
                                         f"subresource=proxy, name={node})")

    async def _pod(self, request: web.Request) -> Tracked:
        """The pod named in the path, after the caller is known and allowed on its node."""
        if await self._user(request) is None:
            raise web.HTTPUnauthorized(text="Unauthorized")
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        t = self.controller.find(ns, name)
        if t is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{name} is not on a kindslurm node")
        await self._authorize(request, t.node)
        return t

    @staticmethod
    def _container(t: Tracked, name: str | None) -> str:
        spec = t.pod.get("spec") or {}
        names = [c.get("name") for k in ("initContainers", "containers") for c in spec.get(k) or []]
        if name is None:
            return str(names[-1])
        if name not in names:
            raise web.HTTPBadRequest(text=f"container {name} is not valid for pod {t.name}")
        return name

    # -- routes ---------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        t = await self._pod(request)
        container = self._container(t, request.match_info["container"])
        query = request.query
        if not t.done:
            try:
                return await self._live_logs(request, t, container)
            except (NotReachable, aiohttp.ClientError, OSError, asyncio.TimeoutError):
                pass  # no cluster (yet, or any more): what was saved
        job_dir = self.controller.runs.job_dir(t.run_id)
        instances = PodFiles.of(job_dir).log_instances(container) if job_dir else []
        path = logs.pick(instances, logs.is_true(query, "previous"))
        if path is None:
            if logs.is_true(query, "previous"):
                raise web.HTTPBadRequest(text=f'previous terminated container "{container}" in pod "{t.name}" not found')
            waiting = (t.last_status or {}).get("message") or "the pod's run has not started it"
            raise web.HTTPBadRequest(text=f'container "{container}" in pod "{t.name}" is waiting to start: {waiting}')
        try:
            body = logs.saved(path.read_bytes(), query)
        except logs.BadOption as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        return web.Response(body=body, content_type="text/plain")

    async def _live_logs(self, request: web.Request, t: Tracked, container: str) -> web.StreamResponse:
        inner = self.inners.of(t.run_id)
        assert self.session is not None
        follow = logs.is_true(request.query, "follow")
        timeout = aiohttp.ClientTimeout(total=None if follow else 120, connect=10, sock_read=None if follow else 60)
        async with self.session.get(inner.url(f"/api/v1/namespaces/{t.namespace}/pods/{t.name}/log"),
                                    params=logs.inner_query(request.query, container), ssl=inner.ssl,
                                    server_hostname=inner.server_name, timeout=timeout) as upstream:
            if upstream.status != 200:
                body = await upstream.read()
                if upstream.status in (404, 500, 502, 503):
                    raise NotReachable(body.decode(errors="replace"))
                return web.Response(status=upstream.status, body=body,
                                    content_type=upstream.content_type or "text/plain")
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    def streaming(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            t = await self._pod(request)
            container = self._container(t, request.match_info.get("container")) if kind != "portForward" else None
            if t.done:
                raise web.HTTPBadRequest(text=f"pod {t.name} has ended: its cluster is gone")
            try:
                inner = self.inners.of(t.run_id)
            except NotReachable as e:
                raise web.HTTPBadRequest(text=f"pod {t.name}: {e}; try again once it is Running") from None
            path = streaming.inner_path(kind, t.namespace, t.name, container, request.query)
            try:
                if streaming.is_websocket(request.headers):
                    assert self.session is not None
                    return await streaming.websocket_relay(request, inner, path, self.session)
                if request.headers.get("Upgrade", "").lower().startswith("spdy/"):
                    return await streaming.spdy_relay(request, inner, path)
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
                raise web.HTTPBadGateway(text=f"pod {t.name}: its cluster's API server did not answer ({e})") from None
            raise web.HTTPBadRequest(text="this endpoint needs an upgrade to SPDY/3.1 or WebSocket")
        return handle

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for kind in ("exec", "attach"):
            for shape in ("{namespace}/{pod}/{container}", "{namespace}/{pod}/{uid}/{container}"):
                r.add_route("*", f"/{kind}/{shape}", self.streaming(kind))
        for shape in ("{namespace}/{pod}", "{namespace}/{pod}/{uid}"):
            r.add_route("*", f"/portForward/{shape}", self.streaming("portForward"))

        async def on_start(_: web.Application) -> None:
            self.session = aiohttp.ClientSession()

        async def on_stop(_: web.Application) -> None:
            if self.session is not None:
                await self.session.close()

        app.on_startup.append(on_start)
        app.on_cleanup.append(on_stop)
        return app


class Server(threading.Thread):
    """The endpoint on its own event loop, beside the controller's threads."""

    def __init__(self, endpoint: Endpoint, host: str, port: int, ctx: ssl.SSLContext) -> None:
        super().__init__(name="kubelet-endpoint", daemon=True)
        self.endpoint, self.host, self.port, self.ctx = endpoint, host, port, ctx
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.runner: web.AppRunner | None = None

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.runner = web.AppRunner(self.endpoint.app(), handle_signals=False, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ctx, shutdown_timeout=1)
            self.loop.run_until_complete(site.start())
        except BaseException as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if self.runner is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
