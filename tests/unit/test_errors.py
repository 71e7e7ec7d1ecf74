"""Bad input: one clear error line, exit code 2, and no output file left behind."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from edgekit.cli import main


def _fails(args, out, match):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and match in r.output, r.output
    assert "Traceback" not in r.output
    assert not out.exists()
    assert not list(out.parent.glob(out.name + ".*")), "a temp file was left behind"


def test_missing_model_path(tmp_path):
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(tmp_path / "nope" / "model.gguf"), "-o", str(out)], out, "does not exist")


def test_unsupported_architecture(tmp_path):
    d = tmp_path / "t5"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}))
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(d), "-o", str(out)], out, "t5")


def test_truncated_gguf(tmp_path):
    from edgekit.models import resolve_spec

    src = resolve_spec("smollm2-135m").file
    bad = tmp_path / "cut.gguf"
    with open(src, "rb") as f:
        bad.write_bytes(f.read(1 << 20))
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(bad), "-o", str(out)], out, "cut.gguf")


def test_corrupt_safetensors(tiny_llama_dir, tmp_path):
    d = tmp_path / "broken"
    shutil.copytree(tiny_llama_dir, d)
    st = d / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(d), "-o", str(out)], out, "safetensors")


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"\xff\xfe\x00bad", "UTF-8"), (b"   \n\n", "empty")])
def test_bad_calibration_file(tiny_llama_dir, tmp_path, content, match):
    calib = tmp_path / "calib.txt"
    calib.write_bytes(content)
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(tiny_llama_dir), "--calib", str(calib), "-o", str(out)], out, match)


def test_calibration_too_short(tiny_llama_dir, tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_text("just a few words")
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(tiny_llama_dir), "--calib", str(calib), "--calib-seqlen", "64", "-o", str(out)], out,
           "fewer than")


def test_bad_jsonl_calibration(tiny_llama_dir, tmp_path):
    calib = tmp_path / "calib.jsonl"
    calib.write_text('{"txt": "no text field"}\n')
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(tiny_llama_dir), "--calib", str(calib), "-o", str(out)], out, "'text'")


def test_group_size_that_does_not_divide(tiny_llama_dir, tmp_path):
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(tiny_llama_dir), "--group-size", "48", "--calib-samples", "2", "--calib-seqlen", "32",
            "-o", str(out)], out, "not a multiple of group_size")


def test_truncated_artifact(tiny_llama_dir, tmp_path):
    out = tmp_path / "ok.ekq"
    r = CliRunner().invoke(main, ["quantize", str(tiny_llama_dir), "--recipe", "rtn-w4a8", "--calib-samples", "2",
                                  "--calib-seqlen", "32", "-o", str(out)])
    assert r.exit_code == 0, r.output
    cut = tmp_path / "cut.ekq"
    cut.write_bytes(out.read_bytes()[:-1000])
    r = CliRunner().invoke(main, ["eval", str(cut)])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output, r.output


def test_unknown_recipe_key(tiny_llama_dir, tmp_path):
    rec = tmp_path / "r.yaml"
    rec.write_text("name: x\nweight: {bits: 4, groupsize: 32}\n")
    out = tmp_path / "o.ekq"
    _fails(["quantize", str(tiny_llama_dir), "--recipe", str(rec), "-o", str(out)], out, "groupsize")
