"""``tinct serve``: the interactive colorization page and the HTTP API on a local port.

Standard library only at module level (the CLI lists every command without importing FastAPI).
"""

from __future__ import annotations

import sys

from tinct.runtime.errors import InputError, bounded, thread_count

NAME = "serve"
EXTRA = "serve"  # the extra that installs what this command needs

MAX_SESSIONS = 1024


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="interactive colorization in the browser, and an HTTP API",
        description="Serve the interactive page (click hints, pick colours, see the result at once) and the "
        "HTTP API (POST /api/colorize, /api/sessions; described at /openapi.json) from this machine. "
        "Binds to 127.0.0.1 unless --host says otherwise; any other address needs --token (or --no-auth). "
        "Needs the 'serve' extra: pip install 'tinct[serve]'.")
    src = p.add_argument_group("engines (default: every shipped model on ONNX Runtime, and on OpenVINO when installed)")
    src.add_argument("--model", action="append", default=[], metavar="NAME",
                     help="a shipped model (repeatable): icolorit-tiny, acolvit-tiny-0.5, color2embed-r18, ...")
    src.add_argument("--engine", action="append", default=[], metavar="ARTIFACT",
                     help="an artifact (repeatable): .onnx (on each --backends), .xml (OpenVINO), or a Color2Embed "
                     "colorizer / export directory")
    src.add_argument("--backends", default=None, metavar="A,B",
                     help="backends for ONNX engines (default: onnxruntime, plus openvino when installed)")
    work = p.add_argument_group("a folder to work through")
    work.add_argument("--folder", default=None, metavar="DIR",
                      help="offer the photos of DIR one after another (next/previous in the page); each photo's hints "
                      "are saved beside it as DIR/<stem>.json (the CLI's hint JSON) and its result is written as "
                      "`tinct batch` writes it, so `tinct batch DIR OUT --hints-dir DIR` reruns the folder later")
    work.add_argument("--folder-output", default=None, metavar="OUT",
                      help="where --folder's results go (default DIR/colorized)")
    work.add_argument("--folder-format", default="png", choices=["png", "jpg"],
                      help="the results' format, as `tinct batch --format` (default png)")
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    net.add_argument("--port", type=bounded(0, 65535), default=8000, help="port (default 8000; 0 = any free port)")
    sec = p.add_argument_group("security (docs/browser.md#security-model)")
    sec.add_argument("--token", default=None, metavar="SECRET|auto",
                     help="require this secret on every /api request (the page gets it from the address printed at "
                     "start, .../?token=...); 'auto' makes a random one; default: $TINCT_SERVE_TOKEN, else none "
                     "(allowed on loopback only)")
    sec.add_argument("--no-auth", action="store_true",
                     help="serve a non-loopback --host without a token: anyone who can reach it can use it")
    sec.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                     help="a host name the server may be addressed by (repeatable); IP addresses and localhost "
                     "always are; any other Host header is refused (DNS rebinding)")
    res = p.add_argument_group("resources")
    res.add_argument("--threads", type=thread_count, default=1,
                     help="intra-op threads per engine (default 1: requests run side by side)")
    res.add_argument("--max-sessions", type=bounded(1, MAX_SESSIONS), default=16,
                     help=f"interactive sessions kept (least recently used dropped first; 1..{MAX_SESSIONS}, default 16)")
    res.add_argument("--max-memory", "--max-session-memory", dest="max_memory", type=bounded(64, 1 << 20),
                     default=3072, metavar="MiB",
                     help="one memory budget for sessions and work in flight (decodes, one-shot requests, "
                     "full-resolution renders, references); past it work waits, then 503 (default 3072 MiB: a one-shot "
                     "request at the default --max-pixels needs ~2.3 GiB)")
    res.add_argument("--busy-wait", type=bounded(0, 600, float), default=10.0, metavar="S",
                     help="how long work waits for memory before it answers 503 with Retry-After (default 10 s)")
    res.add_argument("--idle-timeout", type=bounded(10, 7 * 86400, float), default=900.0, metavar="S",
                     help="drop a session unused this long (default 900 s)")
    res.add_argument("--max-upload-mb", type=bounded(1, 1024, float), default=32.0, help="largest upload (default 32)")
    res.add_argument("--max-pixels", type=bounded(1e4, 2e8, float), default=40e6,
                     help="largest photo in pixels (default 40e6)")
    res.add_argument("--preview", type=bounded(64, 4096), default=1280,
                     help="longer side of the interactive image (default 1280)")
    res.add_argument("--body-timeout", type=bounded(1, 3600, float), default=30.0, metavar="S",
                     help="a request body must arrive within this (default 30 s; then 408 and the upload dropped)")
    res.add_argument("--header-timeout", type=bounded(1, 300, float), default=10.0, metavar="S",
                     help="a connection must complete a request header within this (default 10 s)")
    res.add_argument("--max-connections", type=bounded(16, 1 << 20), default=1024,
                     help="open connections at most (default 1024; more are closed at once)")
    ray = p.add_argument_group("scale-out (needs the 'ray' extra)")
    ray.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                     help="serve the API as a Ray Serve deployment: 'local' starts Ray here, 'auto' joins the running "
                     "cluster, or a cluster address; each replica holds its own engines")
    ray.add_argument("--replicas", type=bounded(1, 256), default=1,
                     help="--ray: replicas (1..256, default 1); with more than one, interactive sessions are off "
                     "(POST /api/colorize only)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def security_of(args) -> dict:
    """--token / --no-auth / --allowed-host checked before anything starts: a token, or None."""
    import os
    import secrets

    token = args.token if args.token is not None else os.environ.get("TINCT_SERVE_TOKEN") or None
    if token == "auto":
        token = secrets.token_urlsafe(24)
    if token is not None and (len(token) < 16 or not token.isprintable() or any(c in token for c in " ;,\"")):
        raise InputError("--token: at least 16 printable characters without spaces, ';', ',' or quotes "
                         "(or 'auto' for a random one)")
    if token and args.no_auth:
        raise InputError("--token and --no-auth contradict each other: give one")
    if args.host not in LOOPBACK and token is None and not args.no_auth:
        raise InputError(f"--host {args.host} lets other machines reach the server: give --token SECRET (or "
                         "--token auto), or --no-auth if every machine that can reach it may use it")
    for name in args.allowed_host:
        if not name or any(c in name for c in "/:@ ") or not name.isprintable():
            raise InputError(f"--allowed-host {name!r}: a host name, without scheme or port")
    return {"token": token, "allowed_hosts": tuple(args.allowed_host)}


def run(args) -> int:
    from pathlib import Path

    import uvicorn

    from tinct.serve.app import Limits, Security, create_app
    from tinct.serve.engines import EngineSet
    from tinct.serve.protocol import RESERVED_FDS, protocol_class, raise_fd_limit
    from tinct.serve.sessions import SessionStore

    backends = None
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        if not backends:
            raise InputError("--backends: give at least one backend")
    if args.replicas != 1 and not args.ray:
        raise InputError("--replicas applies to --ray")
    if (args.folder_output or args.folder_format != "png") and not args.folder:
        raise InputError("--folder-output and --folder-format apply to --folder")
    if args.folder and args.ray:
        raise InputError("--folder works on one server: leave out --ray")
    folder = None
    if args.folder:
        from tinct.serve.folder import Folder

        folder = Folder(args.folder, args.folder_output, args.folder_format, max_pixels=int(args.max_pixels))
    sec = security_of(args)
    if args.no_auth and args.host not in LOOPBACK:
        print(f"tinct serve: --no-auth on {args.host}: anyone who can reach this address can use the server, "
              "read its sessions and spend its memory and cores", file=sys.stderr)
    security = {**sec, "max_body": int(args.max_upload_mb * 2**20), "body_timeout": args.body_timeout}
    if args.ray:
        from tinct.serve import ray_serve

        if args.port == 0:
            raise InputError("--ray needs a fixed --port (Ray Serve's proxy binds it)")
        EngineSet.build(args.model, args.engine, backends, threads=args.threads).close()  # bad names fail here
        cfg = {"models": list(args.model), "engines": [str(Path(e).resolve()) for e in args.engine],
               "backends": backends, "threads": args.threads, "replicas": args.replicas,
               "max_sessions": args.max_sessions, "max_bytes": int(args.max_memory) << 20,
               "idle_s": args.idle_timeout, "wait_s": args.busy_wait, "security": security,
               "limits": {"max_upload_bytes": int(args.max_upload_mb * 2**20), "max_pixels": int(args.max_pixels),
                          "preview": args.preview}}
        return ray_serve.run(cfg, args.ray, args.host, args.port, log=lambda m: print(m, file=sys.stderr, flush=True))
    engines = EngineSet.build(args.model, args.engine, backends, threads=args.threads)
    store = SessionStore(max_sessions=args.max_sessions, max_bytes=int(args.max_memory) << 20,
                         idle_s=args.idle_timeout, wait_s=args.busy_wait)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_pixels),
                    preview=args.preview)
    app = create_app(engines, store, limits, security=Security(**security), folder=folder)
    fds = raise_fd_limit()
    if args.max_connections > fds - RESERVED_FDS:
        raise InputError(f"--max-connections {args.max_connections}: this process may open {fds} files; use at "
                         f"most {fds - RESERVED_FDS}")
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    # no per-message deflate: the page's WebSocket carries JPEGs, which do not compress, and deflating
    # them cost more than the transfer
    config = uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=5, ws_per_message_deflate=False,
                            ws_max_size=1 << 20, timeout_keep_alive=5,
                            http=protocol_class(args.header_timeout, args.max_connections))
    server = uvicorn.Server(config)
    names = ", ".join(e["id"] for e in engines.describe())
    shown = f"[{host}]" if ":" in host else host
    login = f"?token={sec['token']}" if sec["token"] else ""
    print(f"tinct serve: http://{shown}:{port}/{login}  (API: /openapi.json; engines: {names})", file=sys.stderr,
          flush=True)
    if folder is not None:
        print(f"tinct serve: {len(folder.rows)} photo(s) of {folder.input_dir}; hints beside them, results in "
              f"{folder.output_dir}", file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        engines.close()
    return 0


def _bind(host: str, port: int):
    """The listening socket, bound here so that a taken port or a foreign address is one line, and port 0
    reports the port it got."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: {exc.strerror or exc}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
