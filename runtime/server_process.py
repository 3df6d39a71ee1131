"""Child processes on loopback (the server, vendor emulators) for the demo and the benchmark.

Running the server in its own process keeps its timing honest: the simulated callers' own CPU
(audio pacing, transcription) never runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

#: Loading Whisper and Piper takes a few seconds; a cold disk cache can take far longer.
STARTUP_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class LocalServer:
    url: str
    auth_token: str
    api_token: str
    pid: int

    async def api_get(self, http: aiohttp.ClientSession, path: str) -> Any:
        """GET a JSON API route with the server's bearer token."""
        headers = {"Authorization": f"Bearer {self.api_token}"}
        async with http.get(self.url + path, headers=headers) as response:
            response.raise_for_status()
            return await response.json()


@asynccontextmanager
async def child_process(
    args: list[str], ready_url: str, log_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python -m <args>`` until the block ends, once ``ready_url`` answers 200."""
    with open(log_path, "wb") as log:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", *args, env=env, stdout=log, stderr=log)
        try:
            await _wait_ready(ready_url, process, log_path)
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
            await process.wait()


@asynccontextmanager
async def local_server(port: int, log_path: Path, **env: str) -> AsyncIterator[LocalServer]:
    """Start ``leadline serve`` with fresh tokens, wait until /health says ready, stop it after."""
    url = f"http://127.0.0.1:{port}"
    auth_token, api_token = secrets.token_hex(16), secrets.token_hex(16)
    server_env = dict(
        os.environ,
        TWILIO_AUTH_TOKEN=auth_token,
        LEADLINE_API_TOKEN=api_token,
        LEADLINE_PUBLIC_URL=url,
        LEADLINE_PORT=str(port),
        **env,
    )
    async with child_process(["runtime.cli", "serve"], url + "/health", log_path, server_env) as process:
        yield LocalServer(url, auth_token, api_token, process.pid)


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the process exited during start-up; see {log_path}")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"not ready after {STARTUP_TIMEOUT_S:.0f} s; see {log_path}")
