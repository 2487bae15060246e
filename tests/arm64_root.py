"""A linux/arm64 Debian root run under QEMU user emulation: the machine the arm64 leg of the suite tests tinct's
runtime on (tests/test_arm64.py). Test infrastructure, not product code.

Route (measured on this machine kind, see ../shared/facts.md): Debian's ``qemu-user-static`` + ``binfmt-support``
+ ``debootstrap``; ``debootstrap --arch=arm64 --foreign --variant=minbase`` then the second stage inside the
root; Python from Debian (bookworm: 3.11); one virtual environment per version set (:data:`VERSION_SETS`), each
with the aarch64 wheels of tinct's runtime dependencies and tinct's own runtime-only wheel (no torch, no onnx).

Three traps, handled here: pip inside the root needs the host's extra CA certificates and a clean environment
(``env -i``); ``import onnxruntime`` segfaults under QEMU 7.2 when the host's Intel ``/proc/cpuinfo`` shows
through, so an ARM cpuinfo is bind-mounted over it; QEMU's default ``max`` CPU (SVE-512 + SME) makes ONNX Runtime
pick kernels that emulate ~20x slower, so :data:`QEMU_CPU` is pinned to ``neoverse-n1`` (Armv8.2 with NEON and
the dot-product instructions: the class of a Jetson Orin's Cortex-A78AE).

The root is cached under ``$TINCT_ARM64_CACHE`` (default ``~/.cache/tinct/arm64``) in a folder named by the
sha256 of its :func:`manifest`; a root whose manifest matches is reused (the wheel of tinct is reinstalled on
every run: it is what is tested). Nothing here removes a folder while anything is mounted inside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
QEMU_CPU = "neoverse-n1"  # Armv8.2-A + dot product, no SVE: close to a Jetson Orin's Cortex-A78AE
# The runtime's dependencies on arm64: "current" = the versions this release is developed with; "lowest" = the
# lower bounds pyproject.toml declares (the oldest a Jetson user may have), installed exactly.
VERSION_SETS = {
    "current": {"numpy": "2.4.6", "Pillow": "13.0.0", "onnxruntime": "1.32.0", "tqdm": "4.70.1", "numba": "0.68.1",
                "openvino": "2026.4.1"},
    "lowest": {"numpy": "1.26.0", "Pillow": "10.0.0", "onnxruntime": "1.18.0", "tqdm": "4.66.0", "numba": "0.60.0",
               "openvino": "2024.4.0"},
}
# two Neoverse-N1 cores as Linux shows them (MIDR 0x410fd0c1)
CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
    "cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
    "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n" for i in range(2))
TOOLS = {"qemu-aarch64-static": "qemu-user-static", "update-binfmts": "binfmt-support", "debootstrap": "debootstrap"}


class CannotEmulate(Exception):
    """This machine cannot run the arm64 root (the message says why)."""


def log(msg: str) -> None:
    print(f"[arm64] {msg}", flush=True)


def _run(cmd, timeout: int = 1800, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))[:200]} failed ({r.returncode}): {(r.stderr or r.stdout)[-2000:]}")
    return r


def manifest() -> dict:
    return {"layout": 1, "suite": SUITE, "mirror": MIRROR, "debian": list(DEBIAN_PACKAGES), "qemu_cpu": QEMU_CPU,
            "venvs": VERSION_SETS}


def cache_dir() -> Path:
    return Path(os.environ.get("TINCT_ARM64_CACHE", Path.home() / ".cache" / "tinct" / "arm64"))


def root_path() -> Path:
    key = hashlib.sha256(json.dumps(manifest(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"{SUITE}-arm64-{key}"


# ----------------------------------------------------------------------------- the host

def check_host() -> None:
    """Raise :class:`CannotEmulate` unless this machine can run an arm64 root (root, the tools, binfmt)."""
    if os.uname().machine not in ("x86_64", "amd64"):
        raise CannotEmulate(f"the arm64 leg runs on x86-64 hosts (this is {os.uname().machine})")
    if os.geteuid() != 0:
        raise CannotEmulate("the arm64 leg needs root (debootstrap, chroot, mounts)")
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise CannotEmulate(f"missing Debian packages {', '.join(missing)} ('make test' installs them as root)")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        try:
            _run(["mount", "-t", "binfmt_misc", "binfmt_misc", binfmt], timeout=30)
        except RuntimeError as exc:
            raise CannotEmulate(f"binfmt_misc cannot be mounted here ({str(exc)[-200:]})") from None
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, timeout=60)
    entry = binfmt / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        raise CannotEmulate("the qemu-aarch64 binfmt handler is not registered (update-binfmts --enable qemu-aarch64)")


def _mounted_under(path: Path) -> list[str]:
    p = str(path.resolve())
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1] == p or line.split()[1].startswith(p + "/")]


def _remove(path: Path) -> None:
    """Remove a root folder, refusing while anything is mounted inside it (a bound /sys or /dev would go too)."""
    if path.exists():
        busy = _mounted_under(path)
        if busy:
            raise RuntimeError(f"refusing to remove {path}: still mounted there: {busy[:3]}")
        shutil.rmtree(path)


# ----------------------------------------------------------------------------- inside the root

@contextlib.contextmanager
def mounted(root: Path):
    """/proc (with the ARM cpuinfo over /proc/cpuinfo) and a read-only /sys inside ``root``; always unmounted."""
    cpuinfo = root.parent / f"{root.name}.cpuinfo"
    cpuinfo.write_text(CPUINFO)
    done: list[Path] = []
    try:
        for args, target in ((["-t", "proc", "proc"], root / "proc"), (["--bind", "/sys"], root / "sys"),
                             (["--bind", cpuinfo], root / "proc" / "cpuinfo")):
            if target.name != "cpuinfo":  # /proc/cpuinfo exists once proc is mounted
                target.mkdir(parents=True, exist_ok=True)
            _run(["mount", *args, target], timeout=30)
            done.append(target)
            if target.name == "sys":
                _run(["mount", "-o", "remount,bind,ro", target], timeout=30)
        yield root
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)


def chroot(root: Path, command: str, timeout: int = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` (/bin/sh -c) inside the root under emulation, with a clean environment and QEMU_CPU pinned."""
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "LC_ALL": "C.UTF-8", "QEMU_CPU": QEMU_CPU, "PYTHONUNBUFFERED": "1"}
    return _run(["env", "-i", *(f"{k}={v}" for k, v in {**base, **(env or {})}.items()), "chroot", root,
                 "/bin/sh", "-c", command], timeout=timeout)


def _build(tmp: Path) -> None:
    t0 = time.monotonic()
    log(f"debootstrap {SUITE} arm64 (first stage) into {tmp}")
    _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
          SUITE, tmp, MIRROR])
    log(f"second stage under emulation ({time.monotonic() - t0:.0f} s so far)")
    _run(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"QEMU_CPU={QEMU_CPU}", "chroot", tmp,
          "/debootstrap/debootstrap", "--second-stage"])
    certs = Path("/usr/local/share/ca-certificates")
    if certs.is_dir():  # the egress proxy's certificates: pip inside the root must trust them too
        dest = tmp / "usr/local/share/ca-certificates"
        dest.mkdir(parents=True, exist_ok=True)
        for c in certs.glob("*.crt"):
            shutil.copy(c, dest / c.name)
    with mounted(tmp):
        chroot(tmp, "update-ca-certificates >/dev/null")
        for name, pins in VERSION_SETS.items():
            log(f"venv {name}: {', '.join(f'{k}=={v}' for k, v in pins.items())} ({time.monotonic() - t0:.0f} s)")
            chroot(tmp, f"python3 -m venv /opt/{name} && /opt/{name}/bin/pip install -q --disable-pip-version-check "
                        f"--no-compile {' '.join(f'{k}=={v}' for k, v in pins.items())}")
    (tmp / "tinct-manifest.json").write_text(json.dumps(manifest(), indent=1, sort_keys=True))
    log(f"root built in {time.monotonic() - t0:.0f} s")


def ensure_root() -> Path:
    """The arm64 root of :func:`manifest` (built on first use, reused while its manifest matches)."""
    check_host()
    root = root_path()
    if (root / "tinct-manifest.json").is_file() and json.loads((root / "tinct-manifest.json").read_text()) == manifest():
        log(f"reusing {root}")
        return root
    cache_dir().mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(root.name + ".building")
    _remove(tmp)
    try:
        _build(tmp)
    except BaseException:
        with contextlib.suppress(Exception):
            _remove(tmp)
        raise
    _remove(root)
    tmp.rename(root)
    return root


def install_tinct(root: Path, wheel: Path, venv: str) -> None:
    """tinct's runtime-only wheel into the root's ``venv`` (its dependencies are the venv's pinned versions)."""
    dest = root / "tmp" / wheel.name
    shutil.copy(wheel, dest)
    chroot(root, f"/opt/{venv}/bin/pip install -q --disable-pip-version-check --no-compile --no-deps "
                 f"--force-reinstall /tmp/{wheel.name}")
