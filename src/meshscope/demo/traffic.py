"""The demo's traffic generator and control endpoint.

The generator sends `rate` requests/s into the mesh (web's sidecar): 80% `GET /checkout`,
20% `GET /browse`, each its own trace. The control app (on the control port) switches faults
and the rate while the demo runs: `GET`/`PUT /faults`, `GET`/`PUT /traffic`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter

import aiohttp
from aiohttp import web

from meshscope.demo.faults import FaultError, Faults
from meshscope.demo.services import FaultSwitch


class TrafficGenerator:
    def __init__(self, entry_url: str, rate: float, session: aiohttp.ClientSession) -> None:
        self.entry_url = entry_url
        self.rate = rate
        self.session = session
        self.sent: Counter[str] = Counter()
        self._rng = random.Random()
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            if self.rate <= 0:
                await asyncio.sleep(0.2)
                continue
            task = asyncio.create_task(self._one())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(1 / self.rate)

    async def _one(self) -> None:
        if self._rng.random() < 0.8:
            path = f"/checkout?item={self._rng.randint(1, 50)}"
        else:
            path = "/browse"
        try:
            async with self.session.get(self.entry_url + path) as response:
                await response.read()
                self.sent[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError):
            self.sent["connection_error"] += 1

    async def stop(self) -> None:
        for task in list(self._inflight):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body must be JSON: {error}"}),
            content_type="application/json",
        ) from error


def control_app(switch: FaultSwitch, traffic: TrafficGenerator) -> web.Application:
    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(switch.faults.to_dict())

    async def put_faults(request: web.Request) -> web.Response:
        try:
            switch.faults = Faults.from_dict(await _json_body(request))
        except FaultError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(switch.faults.to_dict())

    async def get_traffic(request: web.Request) -> web.Response:
        return web.json_response({"rate": traffic.rate, "responses": dict(traffic.sent)})

    async def put_traffic(request: web.Request) -> web.Response:
        body = await _json_body(request)
        rate = body.get("rate") if isinstance(body, dict) else None
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1000:
            return web.json_response({"error": "rate must be a number in [0, 1000]"}, status=400)
        traffic.rate = float(rate)
        return web.json_response({"rate": traffic.rate, "responses": dict(traffic.sent)})

    app = web.Application()
    app.router.add_get("/faults", get_faults)
    app.router.add_put("/faults", put_faults)
    app.router.add_get("/traffic", get_traffic)
    app.router.add_put("/traffic", put_traffic)
    return app
