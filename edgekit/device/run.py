"""``edgekit device run``: push a bundle to a device, run its ``run.sh`` there, pull the JSON lines back.

Three ways to reach a device: ``local`` (this machine, in place), ``ssh HOST`` (a Raspberry Pi: ``tar`` over ssh
into /tmp) and ``adb [SERIAL]`` (an Android phone: ``adb push`` into /data/local/tmp, where shell users may run
programs). Each checks the bundle's hashes here first, runs ``run.sh -o jsonl`` with the caller's edgekit-bench
options into a file on the device, and pulls that file: what comes back is exactly what the device wrote. Every
failure (unreachable device, a hash or ISA check, a verification mismatch on the device) is one EdgekitError with
the device's own message.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path

from edgekit.device.bundle import check_bundle
from edgekit.errors import EdgekitError

VIAS = ("local", "ssh", "adb")
REMOTE_DIR = {"ssh": "/tmp/edgekit-bundle", "adb": "/data/local/tmp/edgekit-bundle"}
RESULT = "result.jsonl"


def _call(cmd: list[str], what: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; a missing program, a timeout or a non-zero exit is an EdgekitError about ``what``."""
    try:
        kwargs.setdefault("stdout", subprocess.PIPE)
        p = subprocess.run(cmd, stderr=subprocess.PIPE, timeout=timeout, **kwargs)
    except FileNotFoundError:
        raise EdgekitError(f"{cmd[0]} not found on PATH; it is needed to {what}") from None
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"{what} timed out after {timeout:.0f} s: {shlex.join(cmd)}") from None
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace") if isinstance(p.stderr, bytes) else (p.stderr or "")
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        # the device's own "error:" line says it best (edgekit-bench, run.sh); else the last lines
        errors = [ln for ln in lines if "error:" in ln]
        detail = "\n".join(errors[-3:] or lines[-5:]) or f"exit status {p.returncode}"
        raise EdgekitError(f"{what} failed (exit {p.returncode}): {detail}")
    return p


def parse_records(text: str, where: str) -> list[dict]:
    """The JSON objects of JSON-lines ``text``; a line that is not one is an error naming ``where``."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except ValueError:
                raise EdgekitError(f"{where}:{i} is not a JSON line: {line[:120]!r}") from None
            if not isinstance(rec, dict):
                raise EdgekitError(f"{where}:{i} is not a JSON object")
            out.append(rec)
    return out


def _remote_script(folder: str, args: list[str]) -> str:
    # a push may drop the execute bits: the programs, and llama-bench when the bundle carries it
    return (f"cd {shlex.quote(folder)} && chmod 755 run.sh bin/* && {{ [ ! -d llama/bin ] || chmod 755 llama/bin/*; }}"
            f" && sh run.sh {shlex.join(args)} > {RESULT}")


def _connect(bundle: Path, via: str, address: str | None, timeout: float, adb: str, ssh: str):
    """Put the bundle on the device (ssh, adb; local runs in place) and return ``run(args, what)``, which runs
    ``run.sh ARGS`` there and returns what it wrote to stdout, as the device wrote it."""
    if via == "local":
        def run(args: list[str], what: str) -> str:
            with tempfile.TemporaryFile() as f:
                _call(["sh", str(bundle / "run.sh"), *args], what, timeout, stdout=f)
                f.seek(0)
                return f.read().decode("utf-8")
        return run
    if via == "ssh":
        folder = REMOTE_DIR["ssh"]
        base = [ssh, "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", address]
        _call(base + ["true"], f"reaching {address} over ssh", 60)
        tar = subprocess.Popen(["tar", "-C", str(bundle), "-cf", "-", "."], stdout=subprocess.PIPE)
        _call(base + [f"rm -rf {folder} && mkdir -p {folder} && tar -C {folder} -xf -"],
              f"copying the bundle to {address}", timeout, stdin=tar.stdout)
        tar.wait()

        def run(args: list[str], what: str) -> str:
            _call(base + [_remote_script(folder, args)], f"{what} on {address}", timeout)
            return _call(base + [f"cat {folder}/{RESULT}"], f"fetching the results from {address}",
                         120).stdout.decode("utf-8")
        return run
    folder = REMOTE_DIR["adb"]
    base = [adb] + (["-s", address] if address else [])
    state = _call(base + ["get-state"], f"reaching the adb device {address or ''}".rstrip(), 60)
    if state.stdout.decode().strip() != "device":
        raise EdgekitError(f"the adb device {address or ''} is {state.stdout.decode().strip()!r}, not ready")
    _call(base + ["shell", f"rm -rf {folder}"], "clearing the device folder", 120)
    _call(base + ["push", str(bundle), folder], "pushing the bundle (adb push)", timeout)

    def run(args: list[str], what: str) -> str:
        _call(base + ["shell", _remote_script(folder, args)], f"{what} on the device", timeout)
        with tempfile.TemporaryDirectory(prefix="edgekit-device-") as tmp:
            _call(base + ["pull", f"{folder}/{RESULT}", f"{tmp}/{RESULT}"], "pulling the results (adb pull)", 120)
            return Path(tmp, RESULT).read_text(encoding="utf-8")
    return run


def run_bundle(bundle: str | Path, via: str = "local", address: str | None = None, bench_args=(),
               timeout: float = 3600.0, adb: str = "adb", ssh: str = "ssh", llama_cpp: bool = True) -> list[dict]:
    """Run ``bundle`` on a device and return its records, each with ``engine``, ``via``, ``address``, ``target``
    and the artifact's ``recipe`` (from the manifest) added.

    Args:
        via: ``local``, ``ssh`` (``address``: the host, as ssh takes it) or ``adb`` (``address``: a serial or None).
        bench_args: extra edgekit-bench options (``["-p", "128", "-n", "64"]``).
        adb, ssh: the programs to call (tests pass a fake adb).
        llama_cpp: when the bundle carries llama-bench, run it after edgekit-bench with the same tests and threads
            (:mod:`edgekit.device.llama`) and add its records (``engine: llama.cpp``).
    """
    from edgekit.device import llama

    if via not in VIAS:
        raise EdgekitError(f"--via must be one of {', '.join(VIAS)}, got {via!r}")
    if via == "local" and address:
        raise EdgekitError("--via local takes no host or serial")
    if via == "ssh" and not address:
        raise EdgekitError("--via ssh needs a HOST (e.g. pi@raspberrypi.local)")
    manifest = check_bundle(bundle)
    args = [str(a) for a in bench_args]
    run = _connect(Path(bundle).resolve(), via, address, timeout, adb, ssh)
    records = parse_records(run(["-o", "jsonl", *args], "running the bundle's run.sh"), f"{via} {RESULT}")
    if not records:
        raise EdgekitError(f"the bundle ran on {via} but wrote no records (no tests? check -p / -n)")
    for r in records:
        r["engine"] = "edgekit"
    if llama_cpp and manifest.get("llama_cpp"):
        text = run(["llama-bench", *llama.llama_bench_args(records, args)], "running llama-bench from the bundle")
        records += llama.convert(parse_records(text, f"{via} llama-bench output"), f"{via} llama-bench output")
    for r in records:
        r.update(via=via, address=address, target=manifest["target"]["name"], recipe=manifest.get("recipe"))
    return records
