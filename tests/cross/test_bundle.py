"""Device bundles end to end: ``edgekit bundle`` with the static edgekit-bench, its verification under qemu-aarch64
on four Arm CPUs, the adb path against a fake ``adb``, the local run, and every bad input's one clear error.

The programs are built into conftest's ``arm_build`` / ``host_build`` directories (the same portable builds the
kernel tests use: an incremental build of two more targets). The model is the tiny synthetic artifact of
tests/capi_util.py, so each qemu run takes seconds. Timings under qemu mean nothing: only verification, kernels,
exit status and record fields are asserted.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import capi_util as cu

bundle_mod = cu.source_module("edgekit.device.bundle")
run_mod = cu.source_module("edgekit.device.run")
errors = cu.source_module("edgekit.errors")
SCHEMA = json.loads((cu.ROOT / "docs" / "edgekit-bench.schema.json").read_text())
QUICK = ["-p", "8", "-n", "4", "-r", "1", "--max-reps", "1"]  # one short repetition: only correctness counts here
# qemu CPU → the W4A8 matmul dispatch must pick in the rpi4 (armv8.0-required) bundle
ARM_KERNELS = {"cortex-a53": "neon", "cortex-a72": "neon", "cortex-a76": "neondot", "max": "neoni8mm"}
SIGILL = (-4, 128 + 4)


def check_schema(rec: dict) -> None:
    """Every required field of docs/edgekit-bench.schema.json is there with its declared JSON type."""
    types = {"boolean": bool, "string": str, "integer": int, "number": (int, float), "array": list, "object": dict,
             "null": type(None)}
    missing = [k for k in SCHEMA["required"] if k not in rec]
    assert not missing, f"record lacks {missing}"
    for key, value in rec.items():
        spec = SCHEMA["properties"].get(key)
        assert spec is not None, f"field {key!r} is not in the schema"
        if "type" in spec:
            allowed = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            assert isinstance(value, tuple(types[t] for t in allowed)), f"{key}: {value!r} is not {allowed}"
        if "enum" in spec:
            assert value in spec["enum"], f"{key}: {value!r} not in {spec['enum']}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return cu.write_tiny(tmp_path_factory.mktemp("tiny") / "tiny.ekq")


@pytest.fixture(scope="module")
def arm_bundles(arm_build, tiny, tmp_path_factory) -> dict[str, Path]:
    """rpi4 and rpi5 bundles of the tiny model from the one aarch64 build."""
    d = tmp_path_factory.mktemp("arm-bundles")
    return {t: bundle_mod.make_bundle(tiny, t, d / t, build_dir=arm_build) for t in ("rpi4", "rpi5")}


@pytest.fixture(scope="module")
def x86_bundle(host_build, tiny, tmp_path_factory) -> Path:
    if cu.source_module("edgekit.build").host_arch() != "x86_64":
        pytest.skip("the x86-64 bundle runs on an x86-64 host")
    return bundle_mod.make_bundle(tiny, "x86-64", tmp_path_factory.mktemp("x86") / "b", build_dir=host_build)


def run_sh(bundle: Path, *args: str, cpu: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("EDGEKIT_KERNELS", None)
    if cpu:
        env["EDGEKIT_WRAP"] = f"qemu-aarch64 -cpu {cpu}"
    return subprocess.run(["sh", str(bundle / "run.sh"), *args], capture_output=True, text=True, timeout=300, env=env)


def test_bundle_layout_and_manifest(arm_bundles):
    b = arm_bundles["rpi5"]
    m = bundle_mod.check_bundle(b)
    assert m["schema_version"] == bundle_mod.SCHEMA_VERSION and m["target"]["name"] == "rpi5"
    assert m["isa"] == {"required": ["asimd", "asimddp"], "optional": ["i8mm"]}
    assert set(m["files"]) == {"bin/edgekit-bench", "bin/edgekit-generate", "golden/golden-scalar.txt",
                               "model/model.ekq", "run.sh"}
    assert m["tokenizer"] is None  # the synthetic model carries none
    assert m["golden"]["prompts"] == 3 and m["golden"]["tolerance"]["abs"] > 0
    assert m["golden"]["variants"] == ["scalar"]  # the Arm kernels give the scalar bits
    for prog in ("edgekit-bench", "edgekit-generate"):
        exe = b / "bin" / prog
        assert exe.stat().st_mode & stat.S_IXUSR
        head = exe.read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
        info = subprocess.run(["file", str(exe)], capture_output=True, text=True).stdout
        if info:  # `file` may be missing; when present it must say static and stripped
            assert "statically linked" in info and "not stripped" not in info, info
    assert (b / "SHA256SUMS").read_text().count("\n") == len(m["files"])
    # issue #20's budget for the static aarch64 benchmark (stdio, not iostreams, keeps it there)
    assert (b / "bin/edgekit-bench").stat().st_size <= 1.5e6


@pytest.mark.parametrize("cpu", list(ARM_KERNELS))
def test_rpi4_bundle_verifies_under_qemu(arm_bundles, cpu):
    """The armv8.0 bundle runs on every Arm CPU model, verifies the host's logits and picks that CPU's kernel."""
    p = run_sh(arm_bundles["rpi4"], *QUICK, "-o", "jsonl", cpu=cpu)
    assert p.returncode not in SIGILL and "Illegal instruction" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr[-2000:]
    assert "verified 24 positions" in p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["phase"] for r in recs] == ["prefill", "decode"]
    for r in recs:
        check_schema(r)
        assert r["verified"] is True and 0 <= r["verify_max_abs_diff"] < 2e-3
        assert r["kernel"]["gemm_q4x4_q8"] == ARM_KERNELS[cpu] and r["kernel"]["gemm_q4x4_q8b"] == ARM_KERNELS[cpu]
        assert ("asimddp" in r["cpu"]["features"]) == (cpu in ("cortex-a76", "max"))


@pytest.mark.parametrize("cpu", ["cortex-a53", "cortex-a72"])
def test_rpi5_bundle_on_an_older_cpu_names_the_feature(arm_bundles, cpu):
    p = run_sh(arm_bundles["rpi5"], *QUICK, cpu=cpu)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "lacks the required ISA feature(s) asimddp" in p.stderr and p.stdout == ""


def test_rpi5_bundle_generates_under_qemu(arm_bundles):
    p = run_sh(arm_bundles["rpi5"], "generate", "-n", "5", *map(str, cu.PROMPT), cpu="cortex-a76")
    assert p.returncode == 0, p.stderr
    with cu.Model(cu.source_module("edgekit.native.capi").load_library(), arm_bundles["rpi5"] / "model/model.ekq") as m:
        assert [int(t) for t in p.stdout.split()] == m.greedy(cu.PROMPT, 5)


FAKE_ADB = r'''#!{python}
"""A fake adb: push / pull / shell / get-state on a folder standing for the phone; programs run under qemu."""
import os, shutil, subprocess, sys
root = os.environ["FAKE_ADB_ROOT"]
args = sys.argv[1:]
if args[:1] == ["-s"]:
    if args[1] != "emulator-5554":
        sys.exit("error: device '%s' not found" % args[1])
    args = args[2:]
here = lambda p: root + p  # device paths are absolute
if args == ["get-state"]:
    print("device")
elif args[0] == "push":
    shutil.copytree(args[1], here(args[2]))
    if os.environ.get("FAKE_ADB_DROP_MODES"):  # a push that loses the execute bits
        for d, _, files in os.walk(here(args[2])):
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
elif args[0] == "pull":
    shutil.copyfile(here(args[1]), args[2])
elif args[0] == "shell":
    cpu = os.environ["FAKE_ADB_CPU"]  # "host": the bundle is this machine's own architecture
    env = dict(os.environ, EDGEKIT_WRAP="" if cpu == "host" else "qemu-aarch64 -cpu " + cpu)
    sys.exit(subprocess.run(["sh", "-c", args[1].replace("/data/", root + "/data/")], env=env).returncode)
else:
    sys.exit("fake adb: unsupported " + " ".join(args))
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "phone"
    (root / "data/local/tmp").mkdir(parents=True)
    adb = tmp_path / "adb"
    adb.write_text(FAKE_ADB.replace("{python}", sys.executable))
    adb.chmod(0o755)
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_CPU", "max")
    return adb


def test_device_run_via_fake_adb(arm_bundles, fake_adb):
    recs = run_mod.run_bundle(arm_bundles["rpi4"], "adb", "emulator-5554", QUICK, adb=str(fake_adb))
    assert len(recs) == 2
    for r in recs:
        check_schema(r)
        assert r["verified"] is True and r["via"] == "adb" and r["target"] == "rpi4"
        assert r["kernel"]["gemm_q4x4_q8"] == "neoni8mm"
    with pytest.raises(errors.EdgekitError, match="device 'nope' not found"):
        run_mod.run_bundle(arm_bundles["rpi4"], "adb", "nope", QUICK, adb=str(fake_adb))


def test_device_run_via_adb_reports_the_device_error(arm_bundles, fake_adb, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_CPU", "cortex-a53")
    with pytest.raises(errors.EdgekitError, match="lacks the required ISA feature.s. asimddp"):
        run_mod.run_bundle(arm_bundles["rpi5"], "adb", None, QUICK, adb=str(fake_adb))


def test_local_run_and_cli(x86_bundle, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main

    out = tmp_path / "local.jsonl"
    res = CliRunner().invoke(main, ["device", "run", str(x86_bundle), "--via", "local", "--bench-args",
                                    "-p 8 -n 4 -pg 4,4 -r 3", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["phase"] for r in recs] == ["prefill", "decode", "prefill+decode"]
    assert json.loads(res.output) == recs
    for r in recs:
        check_schema(r)
        assert r["verified"] and r["via"] == "local" and r["peak_rss_mb"] > 0 and r["reps"] >= 3
        assert r["tokens_per_s_ci95"][0] <= r["tokens_per_s"] <= r["tokens_per_s_ci95"][1]
    assert recs[0]["ttft_ms"]["median"] > 0 and recs[1]["ttft_ms"] is None


def test_damaged_bundle_is_refused(x86_bundle, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(x86_bundle, b)
    with open(b / "model/model.ekq", "r+b") as f:  # one flipped byte in the model
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    p = run_sh(b, *QUICK)
    assert p.returncode == 4 and "model/model.ekq: FAILED" in p.stderr and "do not match" in p.stderr
    with pytest.raises(errors.EdgekitError, match="model/model.ekq does not match the sha256"):
        run_mod.run_bundle(b, "local")


def test_x86_bundle_has_golden_data_per_kernel(x86_bundle, tmp_path):
    """One golden file per W4A8 kernel this host runs, each verified by the bench forced onto that kernel; a CPU whose
    kernel the bundle's host lacked gets a clear error, not a false mismatch."""
    import shutil

    from edgekit import _C

    impls = [k for k in _C.implementations("gemm_q4x4_q8") if k != "neon"]
    assert bundle_mod.check_bundle(x86_bundle)["golden"]["variants"] == impls
    exe, model = str(x86_bundle / "bin/edgekit-bench"), str(x86_bundle / "model/model.ekq")
    for impl in impls:
        env = dict(os.environ, EDGEKIT_KERNELS=impl)
        p = subprocess.run([exe, "-m", model, "--golden", str(x86_bundle / "golden"), "-p", "0", "-n", "0"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "verified 24 positions" in p.stderr, (impl, p.stderr)
    shutil.copytree(x86_bundle / "golden", tmp_path / "golden")
    (tmp_path / f"golden/golden-{impls[-1]}.txt").unlink()
    p = subprocess.run([exe, "-m", model, "--golden", str(tmp_path / "golden"), *QUICK], capture_output=True,
                       text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "EDGEKIT_KERNELS"})
    assert p.returncode == 3 and f"no golden data for this CPU's W4A8 kernel '{impls[-1]}'" in p.stderr, p.stderr


def test_golden_mismatch_fails_before_timing(x86_bundle, tmp_path):
    golden = (x86_bundle / "golden/golden-scalar.txt").read_text().splitlines()
    i = next(k for k, line in enumerate(golden) if line.startswith("step"))
    parts = golden[i].split()
    tok, logit = parts[3].split(":")
    parts[3] = f"{tok}:{float(logit) + 0.5}"  # a kernel off by half a unit on the top logit
    golden[i] = " ".join(parts)
    bad = tmp_path / "golden.txt"
    bad.write_text("\n".join(golden) + "\n")
    p = subprocess.run([str(x86_bundle / "bin/edgekit-bench"), "-m", str(x86_bundle / "model/model.ekq"),
                        "--golden", str(bad), *QUICK, "-o", "jsonl"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 3 and p.stdout == ""
    assert "verification failed, nothing was timed: case 0 step 0: the logit of token " + tok in p.stderr


@pytest.mark.parametrize("args, message", [
    (["-o", "xml"], "-o must be md, csv, json or jsonl"),
    (["--cores", "medium"], "--cores must be big, little or all"),
    (["--no-such-flag"], "unknown option '--no-such-flag'"),
    (["-p", "1,x"], "-p needs non-negative integers"),
    (["--cooldown", "45"], "--cooldown needs TEMP:SECONDS"),
    (["-p", "100000"], "test pp100000+tg0 needs 100001 positions"),
])
def test_bench_bad_input(x86_bundle, args, message):
    p = subprocess.run([str(x86_bundle / "bin/edgekit-bench"), "-m", str(x86_bundle / "model/model.ekq"),
                        "--no-verify", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr, (p.returncode, p.stderr)


def test_bench_without_golden_or_model(x86_bundle, tmp_path):
    exe = str(x86_bundle / "bin/edgekit-bench")
    p = subprocess.run([exe, "-m", str(x86_bundle / "model/model.ekq")], capture_output=True, text=True)
    assert p.returncode == 2 and "--verify (the default) needs --golden FILE" in p.stderr
    p = subprocess.run([exe, "-m", str(tmp_path / "none.ekq"), "--no-verify"], capture_output=True, text=True)
    assert p.returncode == 1 and "cannot load the model" in p.stderr and "none.ekq" in p.stderr
    (tmp_path / "g.txt").write_text("edgekit-golden 1\ncase 2 1\nprompt 1\n")
    p = subprocess.run([exe, "-m", str(x86_bundle / "model/model.ekq"), "--golden", str(tmp_path / "g.txt")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "g.txt:3: prompt has fewer ids" in p.stderr


def fake_sysfs(root: Path, temps=(45000, 52500)) -> Path:
    """A big.LITTLE phone's /proc and /sys: cpus 0-3 little (capacity 446, 1.8 GHz), 4-7 big (1024, 2.8 GHz)."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd aes asimddp\n"
                                       "CPU implementer\t: 0x41\nCPU part\t: 0xd05\n\nHardware\t: Test SoC 8\n")
    (root / "proc/self/status").write_text("Name:\tedgekit-bench\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n")
    (root / "proc/self/smaps_rollup").write_text("00400000-ffff [rollup]\nRss:  1024 kB\nPss:   512 kB\n")
    for i in range(8):
        cpu = root / f"sys/devices/system/cpu/cpu{i}"
        (cpu / "cpufreq").mkdir(parents=True)
        (cpu / "cpu_capacity").write_text("1024\n" if i >= 4 else "446\n")
        (cpu / "cpufreq/cpuinfo_max_freq").write_text("2800000\n" if i >= 4 else "1800000\n")
        (cpu / "cpufreq/scaling_governor").write_text("schedutil\n")
    (root / "sys/devices/system/cpu/cpufreq").mkdir()  # not a cpuN entry: ignored
    for i, (t, name) in enumerate(zip(temps, ("cpu-little", "cpu-big"))):
        z = root / f"sys/class/thermal/thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "temp").write_text(f"{t}\n")
        (z / "type").write_text(name + "\n")
    return root


def test_device_facts_from_a_fake_sysfs(x86_bundle, tmp_path):
    root = fake_sysfs(tmp_path / "root")
    exe = str(x86_bundle / "bin/edgekit-bench")
    p = subprocess.run([exe, "--device-info", "--sysfs-root", str(root)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["cpu"]["model"] == "Test SoC 8" and info["cpu"]["features"] == ["fp", "asimd", "aes", "asimddp"]
    assert [c["id"] for c in info["cpu"]["cores"]] == list(range(8))
    assert info["cpu"]["cores"][5] == {"id": 5, "max_khz": 2800000, "capacity": 1024, "governor": "schedutil"}
    assert info["big"] == [4, 5, 6, 7] and info["little"] == [0, 1, 2, 3]
    assert info["thermal"] == [{"zone": "cpu-little", "celsius": 45.0}, {"zone": "cpu-big", "celsius": 52.5}]

    # the same tree behind a timed run: memory figures, pinning, the cool-down that cannot be reached, --require
    golden = str(x86_bundle / "golden")
    p = subprocess.run([exe, "-m", str(x86_bundle / "model/model.ekq"), "--golden", golden,
                        "--sysfs-root", str(root), "--cores", "little", "--cooldown", "40:1", *QUICK, "-n", "0",
                        "-o", "jsonl"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    (r,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert r["peak_rss_mb"] == 2.0 and r["pss_mb"] == 0.5 and r["pinned"] == [0, 1, 2, 3] and r["threads"] == 4
    assert r["cooldown_wait_s"] >= 1.0 and r["thermal_before"][1]["celsius"] == 52.5
    p = subprocess.run([exe, "-m", "x.ekq", "--no-verify", "--sysfs-root", str(root), "--require", "asimd,i8mm"],
                       capture_output=True, text=True)
    assert p.returncode == 3 and "lacks the required ISA feature(s) i8mm (has: fp asimd aes asimddp)" in p.stderr


def test_sustained_reports_throughput_over_time(x86_bundle, tmp_path):
    root = fake_sysfs(tmp_path / "root")
    p = subprocess.run([str(x86_bundle / "bin/edgekit-bench"), "-m", str(x86_bundle / "model/model.ekq"),
                        "--no-verify", "--sysfs-root", str(root), "-p", "0", "-n", "8", "-r", "1", "--max-reps", "1",
                        "--sustained", "1", "-o", "jsonl"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    sus = recs[-1]
    check_schema(sus)
    assert sus["phase"] == "sustained" and sus["verified"] is False and len(sus["over_time"]) == sus["reps"] >= 2
    assert all(len(w) == 3 and w[2] == 52.5 for w in sus["over_time"])
    assert sus["over_time"][-1][0] >= sus["over_time"][0][0]


FAKE_SSH = r'''#!{python}
"""A fake ssh: `ssh -o .. -o .. HOST COMMAND` runs COMMAND here, its /tmp/ moved under FAKE_SSH_ROOT, under qemu."""
import os, subprocess, sys
args = sys.argv[1:]
while args[0] == "-o":
    args = args[2:]
host, command = args[0], args[1]
if host != "pi@raspberrypi":
    sys.stderr.write("ssh: Could not resolve hostname %s: Name or service not known\n" % host)
    sys.exit(255)
root = os.environ["FAKE_SSH_ROOT"]
env = dict(os.environ, EDGEKIT_WRAP="qemu-aarch64 -cpu cortex-a72")
sys.exit(subprocess.run(["sh", "-c", command.replace("/tmp/", root + "/tmp/")], env=env).returncode)
'''


def test_device_run_via_fake_ssh(arm_bundles, tmp_path, monkeypatch):
    (tmp_path / "pi/tmp").mkdir(parents=True)
    ssh = tmp_path / "ssh"
    ssh.write_text(FAKE_SSH.replace("{python}", sys.executable))
    ssh.chmod(0o755)
    monkeypatch.setenv("FAKE_SSH_ROOT", str(tmp_path / "pi"))
    recs = run_mod.run_bundle(arm_bundles["rpi4"], "ssh", "pi@raspberrypi", QUICK, ssh=str(ssh))
    assert [r["kernel"]["gemm_q4x4_q8"] for r in recs] == ["neon", "neon"]
    assert all(r["verified"] and r["via"] == "ssh" and r["address"] == "pi@raspberrypi" for r in recs)
    assert (tmp_path / "pi/tmp/edgekit-bundle/manifest.json").is_file()  # the bundle really went over
    with pytest.raises(errors.EdgekitError, match="reaching pi@nowhere over ssh failed .* Could not resolve"):
        run_mod.run_bundle(arm_bundles["rpi4"], "ssh", "pi@nowhere", QUICK, ssh=str(ssh))


FAKE_LLAMA_BENCH = """#!{python}
# llama-bench stand-in: writes -o jsonl lines in llama-bench's field names for the tests it is asked for
import json, sys
a = sys.argv[1:]
def opt(flag, default):
    return [a[i + 1] for i, x in enumerate(a) if x == flag] or default
ints = lambda v: [int(x) for x in v.split(",")]
assert opt("-o", ["md"])[-1] == "jsonl" and opt("-m", [""])[0].endswith("model-q4_0.gguf"), a
reps, threads = int(opt("-r", ["5"])[0]), int(opt("-t", ["4"])[0])
tests = [(p, 0) for p in ints(opt("-p", ["512"])[0]) if p] + [(0, n) for n in ints(opt("-n", ["128"])[0]) if n]
tests += [tuple(ints(v)) for v in opt("-pg", [])]
for p, n in tests:
    ts = [100.0 + i for i in range(reps)]
    print(json.dumps({{"build_commit": "fake", "cpu_info": "fake cpu", "backends": "CPU", "model_filename": "m",
                      "model_type": "llama ?B Q4_0", "model_size": 1, "n_threads": threads, "n_batch": 2048,
                      "n_ubatch": 512, "type_k": "f16", "flash_attn": -1, "n_prompt": p, "n_gen": n,
                      "samples_ns": [(p + n) / t * 1e9 for t in ts], "samples_ts": ts}}))
"""


@pytest.fixture(scope="module")
def llama_bundle(host_build, tiny, tmp_path_factory) -> Path:
    """The x86-64 bundle of the tiny model with a stand-in llama-bench and a stand-in GGUF."""
    if cu.source_module("edgekit.build").host_arch() != "x86_64":
        pytest.skip("the x86-64 bundle runs on an x86-64 host")
    d = tmp_path_factory.mktemp("llama")
    fake = d / "llama-bench"
    fake.write_text(FAKE_LLAMA_BENCH.format(python=sys.executable))
    fake.chmod(0o755)
    (d / "m.gguf").write_bytes(b"GGUF" + bytes(60))
    return bundle_mod.make_bundle(tiny, "x86-64", d / "b", build_dir=host_build, llama_bench=fake,
                                  llama_gguf=d / "m.gguf")


def test_device_run_puts_llama_cpp_beside_edgekit(llama_bundle, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main

    m = json.loads((llama_bundle / "manifest.json").read_text())
    assert m["llama_cpp"]["bench"] == "llama/bin/llama-bench" and "llama/model-q4_0.gguf" in m["files"]
    out = tmp_path / "dev.jsonl"
    res = CliRunner().invoke(main, ["device", "run", str(llama_bundle), "--bench-args", "-p 8 -n 4 -r 3 -t 1",
                                    "-o", str(out)])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["engine"], r["test"]) for r in recs] == [("edgekit", "pp8"), ("edgekit", "tg4"),
                                                        ("llama.cpp", "pp8"), ("llama.cpp", "tg4")]
    llama_schema = json.loads((cu.ROOT / "docs" / "llama-bench-record.schema.json").read_text())
    for ours, theirs in zip(recs[:2], recs[2:]):
        check_schema(ours)
        assert not [k for k in llama_schema["required"] if k not in theirs]
        assert not [k for k in theirs if k not in llama_schema["properties"]]
        # same tests, same threads, at least as many repetitions; the RSS is llama-bench's process's (--measure)
        assert theirs["threads"] == ours["threads"] == 1 and theirs["reps"] >= max(5, ours["reps"])
        assert theirs["cpu"] == ours["cpu"] and 0 < theirs["peak_rss_mb"] < 200 and theirs["verified"] is False
        # the two engines' intervals are the same statistic: edgekit-bench's samples give its own record back
        med, lo, hi = cu.source_module("edgekit.device.llama").summarize(ours["tokens_per_s_samples"])
        assert [med, lo, hi] == pytest.approx([ours["tokens_per_s"], *ours["tokens_per_s_ci95"]], rel=1e-5)
    assert "| llama.cpp |" in res.output and "×" in res.output
    res = CliRunner().invoke(main, ["device", "run", str(llama_bundle), "--bench-args", "-p 8 -n 0 -r 1",
                                    "--no-llama", "-o", str(tmp_path / "only.jsonl"), "--json"])
    assert res.exit_code == 0 and [r["engine"] for r in json.loads(res.output)] == ["edgekit"]


def test_measure_reports_a_childs_peak_rss_and_status(x86_bundle):
    bench = x86_bundle / "bin" / "edgekit-bench"
    code = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); raise SystemExit(7)"
    p = subprocess.run([bench, "--measure", "--", sys.executable, "-c", code], capture_output=True, text=True)
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 7 and rec["exit_status"] == 7 and rec["schema"] == "edgekit-bench/measure"
    assert 64 < rec["peak_rss_mb"] < 400 and rec["cpu"]["features"]
    p = subprocess.run([bench, "--measure", "--", "/nonexistent/llama-bench"], capture_output=True, text=True)
    assert p.returncode == 127 and "cannot run /nonexistent/llama-bench" in p.stderr
    p = subprocess.run(["sh", x86_bundle / "run.sh", "llama-bench"], capture_output=True, text=True)
    assert p.returncode == 2 and "has no llama-bench" in p.stderr


def test_llama_bench_runs_on_an_adb_device_that_drops_modes(llama_bundle, fake_adb, monkeypatch):
    """Through adb too, llama.cpp's records follow edgekit's; the pushed programs get their execute bits back."""
    monkeypatch.setenv("FAKE_ADB_CPU", "host")
    monkeypatch.setenv("FAKE_ADB_DROP_MODES", "1")
    recs = run_mod.run_bundle(llama_bundle, "adb", None, ["-p", "8", "-n", "0", "-r", "1", "--max-reps", "1"],
                              adb=str(fake_adb))
    assert [(r["engine"], r["test"], r["via"]) for r in recs] == [("edgekit", "pp8", "adb"), ("llama.cpp", "pp8", "adb")]
