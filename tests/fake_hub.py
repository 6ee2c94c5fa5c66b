"""A loopback stand-in for the part of the Hugging Face Hub API an upload uses.

`FakeHub` runs an aiohttp app on 127.0.0.1 on its own event loop in a background thread, so the
synchronous `huggingface_hub` client under test talks real HTTP to it. Routes (as
huggingface_hub 2.4.0 calls them, read from hf_api.py and _commit_api.py):

    POST /api/repos/create                            {"name", "organization", "visibility", "type"}
    POST /api/validate-yaml                           the README.md card's front matter check
    POST /api/{type}s/{owner}/{name}/preupload/{rev}  answers every file "regular" (no LFS/xet)
    POST /api/{type}s/{owner}/{name}/commit/{rev}     NDJSON: a header line, then file lines
                                                      with the content inline in base64

Anything else is answered 404 and recorded in `unknown`, so a test sees a route the client
started to need. `fail_with(status)` makes every request fail with that status and a body that
echoes the Authorization header back (as a careless server might), to prove the client side
never repeats it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from teachers.testing import LoopbackServer


@dataclass
class Repo:
    """A repo as created: its type and visibility, and the files of every commit merged."""

    repo_type: str
    visibility: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)  # the NDJSON header values


@dataclass
class Seen:
    """One request as received."""

    method: str
    path: str
    authorization: str | None
    body: bytes


class FakeHub(LoopbackServer):
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}  # "type:owner/name" -> Repo
        self.requests: list[Seen] = []
        self.unknown: list[str] = []
        self.fail_status: int | None = None
        self.fail_route = ""  # fail only requests whose path contains this
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        return self.repos[f"{repo_type}:{repo_id}"]

    def fail_with(self, status: int, route: str = "") -> None:
        """Answer later requests with `status` (the body echoes the Authorization header):
        every one, or those whose path contains `route` ("/commit/": after the repo exists)."""
        self.fail_status, self.fail_route = status, route

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._record])
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate_yaml)
        app.router.add_post("/api/{type}s/{owner}/{name}/preupload/{rev}", self._preupload)
        app.router.add_post("/api/{type}s/{owner}/{name}/commit/{rev}", self._commit)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    # ------------------------------------------------------------------- handlers

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        auth = request.headers.get("Authorization")
        self.requests.append(Seen(request.method, request.path, auth, body))
        if self.fail_status is not None and self.fail_route in request.path:
            # The hub's error shape: {"error": ...}; echoing the credential is the worst case.
            return web.json_response(
                {"error": f"Invalid credentials in Authorization header: {auth}"},
                status=self.fail_status,
            )
        return await handler(request)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}"
        key = f"{repo_type}:{repo_id}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.url}/{prefix}{repo_id}"
        if key in self.repos:
            return web.json_response(
                {"error": "You already created this repo", "url": url}, status=409
            )
        self.repos[key] = Repo(repo_type, body.get("visibility"))
        return web.json_response({"url": url, "name": repo_id, "id": "0" * 24})

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        return web.json_response({"errors": [], "warnings": []})

    def _target(self, request: web.Request) -> Repo | None:
        m = request.match_info
        return self.repos.get(f"{m['type']}:{m['owner']}/{m['name']}")

    async def _preupload(self, request: web.Request) -> web.Response:
        if self._target(request) is None:
            return _not_found()
        body = await request.json()
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in body["files"]
        ]
        return web.json_response({"files": files, "commitOid": "0" * 40})

    async def _commit(self, request: web.Request) -> web.Response:
        repo = self._target(request)
        if repo is None:
            return _not_found()
        lines = [json.loads(line) for line in (await request.read()).splitlines() if line]
        header, *ops = lines
        assert header["key"] == "header", header
        repo.commits.append(header["value"])
        for op in ops:
            assert op["key"] == "file" and op["value"]["encoding"] == "base64", op["key"]
            repo.files[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
        oid = f"{len(repo.commits):040x}"
        m = request.match_info
        url = f"{self.url}/{m['type']}s/{m['owner']}/{m['name']}/commit/{oid}"
        return web.json_response({"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        return _not_found()


def _not_found() -> web.Response:
    return web.json_response(
        {"error": "Repository not found"}, status=404, headers={"X-Error-Code": "RepoNotFound"}
    )
