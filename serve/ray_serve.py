"""``tinct serve --ray``: the HTTP API of ``tinct serve`` as a Ray Serve deployment with N replicas.

Each replica builds its own engines, session store and FastAPI app (:func:`serve.app.create_app`, the
same routes and error contract) when it starts; Ray Serve's HTTP proxy spreads requests over the
replicas. ``POST /api/colorize`` (one-shot) is unchanged and scales with the replicas.

Interactive sessions live in the memory of the replica that created them, and Ray Serve routes each
request to any replica (it has no session affinity for plain HTTP), so with ``--replicas`` > 1 the
session endpoints (and the page, which uses them) answer 501 with that reason; with one replica they
work as in ``tinct serve``. Every replica's app is behind the same :class:`tinct.serve.guard.Guard` (Host,
Origin, token, body limits) as plain ``tinct serve``, and a non-loopback ``--host`` needs ``--token`` or
``--no-auth`` here too.
"""

from __future__ import annotations

import time

from tinct.runtime.errors import MissingExtraError, TinctError
from tinct.serve.engines import EngineSet
from tinct.serve.ray_batch import cluster_cpus, init
from tinct.serve.sessions import SessionStore

SESSIONS_OFF = ("interactive sessions need 'tinct serve --ray ... --replicas 1' or plain 'tinct serve': Ray Serve "
                "routes each request to any replica, and a session lives in the memory of the one that made it")


def build_app(cfg: dict):
    """One replica's ASGI app from a plain config (what travels to the replica)."""
    from tinct.serve.app import Limits, Security, create_app

    engines = EngineSet.build(cfg["models"], cfg["engines"], cfg["backends"], threads=cfg["threads"])
    store = SessionStore(max_sessions=cfg["max_sessions"], max_bytes=cfg["max_bytes"], idle_s=cfg["idle_s"],
                         wait_s=cfg.get("wait_s", 10.0))
    limits = Limits(**cfg["limits"])
    security = Security(**cfg.get("security", {"max_body": limits.max_upload_bytes}))
    return create_app(engines, store, limits, sessions_off=None if cfg["replicas"] == 1 else SESSIONS_OFF,
                      security=security)


def deployment(cfg: dict):
    """The Ray Serve application: ``cfg['replicas']`` replicas of ``cfg['threads']`` CPUs each."""
    try:
        from ray import serve
    except ImportError:
        raise MissingExtraError("serve --ray", "ray[serve]", "ray") from None

    def build():  # evaluated on each replica when it starts (engines are not picklable)
        return build_app(cfg)

    ingress = serve.ingress(build)()
    dep = serve.deployment(ingress, name="tinct", num_replicas=cfg["replicas"],
                           ray_actor_options={"num_cpus": cfg["threads"]})
    return dep.bind()


def run(cfg: dict, address: str, host: str, port: int, log=print) -> int:
    """Start (or join) Ray, serve until interrupted, then tear the application down."""

    ray = init(address)
    need = cfg["replicas"] * cfg["threads"]
    if need > cluster_cpus(ray):
        raise TinctError(f"--replicas {cfg['replicas']} x --threads {cfg['threads']} needs {need} CPUs; the Ray "
                         f"cluster has {cluster_cpus(ray)}")
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment(cfg), name="tinct", route_prefix="/", blocking=False)
    shown = f"[{host}]" if ":" in host else host
    token = (cfg.get("security") or {}).get("token")
    login = f"?token={token}" if token else ""
    log(f"tinct serve --ray: http://{shown}:{port}/{login}  ({cfg['replicas']} replica(s) on Ray; API: /openapi.json)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return 0
