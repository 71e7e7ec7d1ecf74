"""``edgekit bundle``: everything a device needs to run and measure an artifact, with no Python on it.

A bundle is a directory::

    bin/edgekit-bench       static, stripped (csrc/tools/bench)
    bin/edgekit-generate    static, stripped (examples/generate.c)
    model/model.ekq         the artifact as is (the runtime memory-maps it)
    tokenizer/              the tokenizer files the artifact carries (absent when it carries none)
    golden/golden-<k>.txt   host logits per W4A8 kernel k, checked before timing (:mod:`edgekit.device.golden`)
    manifest.json           schema version, target, ISA features, recipe, tokenizer hash, sha256 of every file
    SHA256SUMS              the same hashes for ``sha256sum -c`` on the device
    run.sh                  checks the hashes, then runs edgekit-bench (``./run.sh generate ...``: edgekit-generate)
    llama/                  only with ``--llama-bench``: the user's llama-bench (+ libraries), llama.cpp's Q4_0 of
                            the same model (``./run.sh llama-bench ...``; :mod:`edgekit.device.llama`)

The programs come from the architecture's portable build (the toolchain of the target's profile, none of its
``-march`` flags): the kernels of every ISA are compiled in with their own per-file flags and dispatch picks what
the CPU has, so a binary never executes an instruction its CPU lacks. What the profile's kernel needs is instead
required at run time (``features`` → ``edgekit-bench --require``): a Pi 4 given the rpi5 bundle gets a message
naming ``asimddp``, not SIGILL. The output directory appears whole or not at all (built in a temp dir, renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgekit.build import BENCH_PROGRAM, GENERATE_PROGRAM, configure_and_build, host_arch
from edgekit.errors import EdgekitError
from edgekit.targets import Target, load_target

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
MODEL = "model/model.ekq"
PROGRAMS = (BENCH_PROGRAM, GENERATE_PROGRAM)

RUN_SH = """#!/bin/sh
# edgekit bundle for {target} ({description}).
#   ./run.sh [edgekit-bench options]      verify the files, check the model's logits, benchmark (default -o md)
#   ./run.sh generate -p "PROMPT" [-n N]  generate text (examples/generate.c)
#   ./run.sh llama-bench [options]        llama.cpp's llama-bench on its Q4_0 of the model, when the bundle has it,
#                                         under edgekit-bench --measure (adds a JSON line with its peak RSS)
# EDGEKIT_WRAP is put before the program (e.g. "taskset f0", or an emulator).
cd "$(dirname "$0")" || exit 1
if command -v sha256sum >/dev/null 2>&1; then
  if ! out=$(sha256sum -c {sums} 2>&1); then
    echo "$out" | grep -v ': OK$' >&2
    echo "run.sh: error: the bundle's files do not match its manifest (listed above): copy the bundle again" >&2
    exit 4
  fi
else
  echo "run.sh: warning: no sha256sum on this device; file hashes not checked" >&2
fi
if [ "$1" = generate ]; then
  shift
  exec $EDGEKIT_WRAP ./bin/{generate} {model} "$@"
fi
if [ "$1" = llama-bench ]; then
  shift
  if [ ! -f ./{llama_bench} ]; then
    echo "run.sh: error: this bundle has no llama-bench (make it with edgekit bundle --llama-bench PATH)" >&2
    exit 2
  fi
  LD_LIBRARY_PATH="$PWD/{llama_libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" exec $EDGEKIT_WRAP ./bin/{bench} \
    --measure -- ./{llama_bench} -m {llama_model} "$@"
fi
exec $EDGEKIT_WRAP ./bin/{bench} -m {model} --golden golden --require "{require}" "$@"
"""


def sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_build_dir(target: Target) -> Path:
    """Where bundles of ``target``'s architecture are built (one portable build per architecture, reused)."""
    from edgekit.cache import cache_dir

    return cache_dir() / "bundle-build" / target.arch


def build_programs(target: Target, build_dir: Path | None = None, jobs: int = 2) -> Path:
    """Build (incrementally) the static device programs for ``target``'s architecture; returns the build dir."""
    if target.arch != host_arch() and target.toolchain is None:
        raise EdgekitError(f"target {target.name} is {target.arch} but this machine is {host_arch()}, and the profile "
                           "names no CMake toolchain file for a cross build")
    if target.arch == "aarch64" and host_arch() != "aarch64" and shutil.which("aarch64-linux-gnu-g++") is None:
        raise EdgekitError(f"aarch64-linux-gnu-g++ not found; it is needed to build the {target.name} bundle "
                           "(Debian: apt-get install g++-aarch64-linux-gnu)")
    toolchain = target.toolchain if target.arch != host_arch() else None
    return configure_and_build(build_dir or default_build_dir(target), toolchain=toolchain, jobs=jobs,
                               targets=PROGRAMS)


def _strip(src: Path, dst: Path, target: Target) -> None:
    strip = "strip" if target.arch == host_arch() else f"{target.arch}-linux-gnu-strip"
    if shutil.which(strip) is None:
        raise EdgekitError(f"{strip} not found; it is needed to strip the bundle's programs (binutils)")
    p = subprocess.run([strip, "--strip-all", "-o", str(dst), str(src)], capture_output=True, text=True)
    if p.returncode != 0:
        raise EdgekitError(f"{strip} failed on {src}: {p.stderr.strip()}")
    dst.chmod(0o755)


def make_bundle(artifact: str | os.PathLike, target: str | Target, out: str | os.PathLike, *,
                build_dir: str | os.PathLike | None = None, jobs: int = 2,
                llama_bench: str | os.PathLike | None = None, llama_gguf: str | os.PathLike | None = None) -> Path:
    """Write the bundle of ``artifact`` for ``target`` to ``out`` (which must not exist yet); returns ``out``.

    ``build_dir`` reuses a build directory of the architecture's portable build; the golden logits come from this
    host's libedgekit.so (:func:`edgekit.native.capi.load_library`). ``llama_bench`` (a llama-bench built for the
    target) adds llama.cpp to the bundle, run on ``llama_gguf`` or else on llama.cpp's own Q4_0 requantization of
    the artifact's source model (needs llama-cpp-python, ``edgekit[bench]``).
    """
    from edgekit.device import llama
    from edgekit.artifact import read_artifact, write_tokenizer
    from edgekit.device.golden import write_golden_files

    t = target if isinstance(target, Target) else load_target(target)
    out = Path(out)
    if out.exists():
        raise EdgekitError(f"{out} already exists; bundles are written whole: pick a new directory or remove it")
    art = read_artifact(artifact)
    if art.family != "llama" or art.task != "causal-lm":
        raise EdgekitError(f"{artifact} is a {art.family} {art.task} artifact; bundles run llama-family causal LMs")
    if llama_gguf is not None and llama_bench is None:
        raise EdgekitError("--llama-gguf is the model for --llama-bench; pass --llama-bench PATH too")
    peer = llama.check_llama_bench(llama_bench, t.arch) if llama_bench is not None else None
    gguf = llama.check_gguf(llama_gguf) if llama_gguf is not None else None
    source = None
    if peer is not None and gguf is None:
        from edgekit.bench.model import cached_q4_0, source_gguf

        source = source_gguf(art.source)  # before the build: a source that is no GGUF fails at once
    built = build_programs(t, Path(build_dir) if build_dir else None, jobs)
    if source is not None:
        gguf = cached_q4_0(source)[0]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for sub in ("bin", "model", "golden"):
            (tmp / sub).mkdir()
        for prog in PROGRAMS:
            _strip(built / prog, tmp / "bin" / prog, t)
        shutil.copyfile(art.path, tmp / MODEL)
        tokenizer = None
        if json.loads(art.meta.get("edgekit.tokenizer", "{}")):
            (tmp / "tokenizer").mkdir()
            write_tokenizer(art, tmp / "tokenizer")
            tj = tmp / "tokenizer" / "tokenizer.json"
            tokenizer = {"path": "tokenizer/tokenizer.json", "sha256": sha256(tj) if tj.is_file() else None}
        golden = write_golden_files(tmp / MODEL, tmp / "golden", t.arch)
        llama_cpp = None
        if peer is not None:
            prog, libs = peer
            (tmp / llama.LLAMA_BENCH).parent.mkdir(parents=True)
            shutil.copyfile(prog, tmp / llama.LLAMA_BENCH)
            (tmp / llama.LLAMA_BENCH).chmod(0o755)
            if libs:
                (tmp / llama.LLAMA_LIBS).mkdir(parents=True)
                for lib in libs:
                    shutil.copyfile(lib, tmp / llama.LLAMA_LIBS / lib.name)
            shutil.copyfile(gguf, tmp / llama.LLAMA_MODEL)
            llama_cpp = {"bench": llama.LLAMA_BENCH, "libraries": [f"{llama.LLAMA_LIBS}/{x.name}" for x in libs],
                         "model": llama.LLAMA_MODEL, "model_from": str(llama_gguf) if llama_gguf is not None else
                         f"llama.cpp's Q4_0 requantization of {art.source}"}
        (tmp / "run.sh").write_text(RUN_SH.format(
            target=t.name, description=t.description, sums=SUMS, generate=GENERATE_PROGRAM, bench=BENCH_PROGRAM,
            model=MODEL, require=",".join(t.features), llama_bench=llama.LLAMA_BENCH, llama_libs=llama.LLAMA_LIBS,
            llama_model=llama.LLAMA_MODEL), encoding="utf-8")
        (tmp / "run.sh").chmod(0o755)
        files = {p.relative_to(tmp).as_posix(): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / SUMS).write_text("".join(f"{h}  {name}\n" for name, h in files.items()), encoding="utf-8")
        manifest = {
            "schema_version": SCHEMA_VERSION, "format": "edgekit-bundle",
            "target": {"name": t.name, "arch": t.arch, "description": t.description, "kernels": t.kernels},
            "isa": {"required": list(t.features), "optional": list(t.optional_features)},
            "model": {"path": MODEL, "source": art.source, "family": art.family, "config": art.model_config},
            "recipe": art.report.get("recipe"), "quant": art.quant, "tokenizer": tokenizer, "golden": golden,
            "programs": {p: f"bin/{p}" for p in PROGRAMS}, "llama_cpp": llama_cpp, "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_bundle(bundle: str | os.PathLike) -> dict:
    """Read a bundle's manifest and check every file's sha256; returns the manifest.

    Raises:
        EdgekitError: no manifest, another schema version, a missing file or a hash that differs (naming it).
    """
    d = Path(bundle)
    m = d / MANIFEST
    if not m.is_file():
        raise EdgekitError(f"{d} is not an edgekit bundle (no {MANIFEST}); make one with edgekit bundle")
    try:
        manifest = json.loads(m.read_text(encoding="utf-8"))
    except ValueError as e:
        raise EdgekitError(f"{m} is damaged ({e}); make the bundle again") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise EdgekitError(f"{m} has schema version {manifest.get('schema_version')!r}; this edgekit reads "
                           f"{SCHEMA_VERSION}: make the bundle again")
    for name, want in manifest.get("files", {}).items():
        p = d / name
        if not p.is_file():
            raise EdgekitError(f"{d}: {name} is missing; copy the bundle again")
        if sha256(p) != want:
            raise EdgekitError(f"{d}: {name} does not match the sha256 in {MANIFEST}; copy the bundle again")
    return manifest
