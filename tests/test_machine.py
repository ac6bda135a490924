"""evaluator.core.machine: which golden folder a machine may be held to (SPEC 6), with synthetic machines and
machine.json files written here (no ../shared needed), plus one check of the real golden folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.core import machine
from evaluator.core.machine import cpu_identity, describe, golden_folder_for, matches, nearest_golden_folder

# As the two golden folders record them (golden/official: only the vendor and the kernel path).
EPYC_RECORDED = {"vendor_id": "AuthenticAMD", "model_name": "AMD EPYC (exact model not recorded)", "cpu_family": None,
                 "model": None, "torch_cpu_capability": "AVX512", "bf16_flags": None, "torch": "2.13.0+cpu"}
ICELAKE_RECORDED = {"vendor_id": "GenuineIntel", "model_name": "Intel(R) Xeon(R) Processor @ 2.80GHz", "cpu_family": 6,
                    "model": 106, "torch_cpu_capability": "AVX512", "bf16_flags": [], "torch": "2.13.0+cpu"}


def identity(vendor, family, model, capability, flags, name="a CPU"):
    return {"vendor_id": vendor, "model_name": name, "cpu_family": family, "model": model,
            "torch_cpu_capability": capability, "bf16_flags": flags}


ICELAKE = identity("GenuineIntel", 6, 106, "AVX512", [], "Intel(R) Xeon(R) Processor @ 2.80GHz")
SAPPHIRE = identity("GenuineIntel", 6, 143, "AVX512", ["avx512_bf16", "amx_bf16"])  # avx512_bf16 and AMX
ICELAKE_WITH_BF16 = identity("GenuineIntel", 6, 106, "AVX512", ["avx512_bf16"])  # same model, other flags
AMD_ZEN4 = identity("AuthenticAMD", 25, 17, "AVX512", ["avx512_bf16"], "AMD EPYC 9654")
AMD_ZEN3 = identity("AuthenticAMD", 25, 1, "AVX2", [], "AMD EPYC 7763")  # no AVX-512: torch's AVX2 path


def write_golden(root: Path, folders: dict[str, dict]) -> Path:
    for name, recorded in folders.items():
        (root / name).mkdir(parents=True)
        (root / name / "machine.json").write_text(json.dumps(recorded, indent=1))
    return root


@pytest.fixture
def golden_copy(tmp_path):
    return write_golden(tmp_path / "golden", {"official": EPYC_RECORDED, "official-intel-icelake": ICELAKE_RECORDED})


def test_icelake_matches_the_icelake_folder_and_not_the_epyc_one(golden_copy):
    assert matches(ICELAKE_RECORDED, ICELAKE) and not matches(EPYC_RECORDED, ICELAKE)
    folder, sentence = golden_folder_for(golden_copy, ICELAKE)
    assert folder == golden_copy / "official-intel-icelake"
    assert "'official-intel-icelake' matches this machine" in sentence and "model 106" in sentence


def test_amd_on_avx512_matches_the_epyc_folder_on_what_it_records(golden_copy):
    assert matches(EPYC_RECORDED, AMD_ZEN4) and not matches(ICELAKE_RECORDED, AMD_ZEN4)
    folder, sentence = golden_folder_for(golden_copy, AMD_ZEN4)
    assert folder == golden_copy / "official"
    assert "same vendor_id, torch_cpu_capability" in sentence
    assert "cpu_family, model, bf16_flags not recorded there" in sentence


def test_amd_on_avx2_matches_none(golden_copy):
    assert not matches(EPYC_RECORDED, AMD_ZEN3)
    folder, sentence = golden_folder_for(golden_copy, AMD_ZEN3)
    assert folder is None
    assert sentence.startswith(f"no golden folder matches this machine ({describe(AMD_ZEN3)})")
    assert "'official': AuthenticAMD" in sentence and "'official-intel-icelake': GenuineIntel" in sentence
    assert "torch_cpu_capability ('AVX512' there vs 'AVX2' here)" in sentence


@pytest.mark.parametrize("intel", [SAPPHIRE, ICELAKE_WITH_BF16], ids=["sapphire-rapids", "model-106-with-bf16"])
def test_intel_with_avx512_bf16_matches_none(golden_copy, intel):
    assert not matches(ICELAKE_RECORDED, intel) and not matches(EPYC_RECORDED, intel)
    folder, sentence = golden_folder_for(golden_copy, intel)
    assert folder is None and "bf16_flags ([] there vs" in sentence


def test_null_or_missing_fields_are_not_compared():
    only_vendor = {"vendor_id": "GenuineIntel", "cpu_family": None}  # the rest missing or null
    assert matches(only_vendor, ICELAKE) and matches(only_vendor, SAPPHIRE) and not matches(only_vendor, AMD_ZEN4)
    assert matches({}, AMD_ZEN3)
    # a recorded [] is recorded ("no bf16 flags"), unlike null
    assert not matches({"bf16_flags": []}, SAPPHIRE) and matches({"bf16_flags": None}, SAPPHIRE)


def test_flags_compare_as_sets_and_unknown_here_does_not_match():
    recorded = {**ICELAKE_RECORDED, "model": 143, "bf16_flags": ["amx_bf16", "avx512_bf16"]}
    assert matches(recorded, SAPPHIRE)  # SAPPHIRE lists them in another order
    assert not matches(ICELAKE_RECORDED, {**ICELAKE, "model": None})  # recorded there, unknown here
    assert not matches(ICELAKE_RECORDED, {**ICELAKE, "bf16_flags": None})
    assert matches(ICELAKE_RECORDED, {**ICELAKE, "model_name": "another name"})  # free text, never compared


def test_the_folder_matching_on_more_recorded_fields_wins(golden_copy):
    zen4 = {"vendor_id": "AuthenticAMD", "cpu_family": 25, "model": 17, "torch_cpu_capability": "AVX512",
            "bf16_flags": ["avx512_bf16"]}
    write_golden(golden_copy, {"amd-zen4": zen4})
    folder, sentence = golden_folder_for(golden_copy, AMD_ZEN4)
    assert folder == golden_copy / "amd-zen4"
    assert "also matching, on fewer recorded fields: official" in sentence


def test_no_golden_folder_at_all(tmp_path):
    folder, sentence = golden_folder_for(tmp_path, ICELAKE)
    assert folder is None and "no golden folder with a machine.json" in sentence


def test_nearest_prefers_the_same_kernel_path_then_more_fields_in_common(golden_copy):
    assert nearest_golden_folder(golden_copy, ICELAKE)[0].name == "official-intel-icelake"  # the match itself
    folder, sentence = nearest_golden_folder(golden_copy, SAPPHIRE)
    assert folder.name == "official-intel-icelake" and sentence.startswith("none matches; nearest")
    assert nearest_golden_folder(golden_copy, AMD_ZEN3)[0].name == "official"  # no AVX2 folder: the vendor
    write_golden(golden_copy, {"intel-avx2": {"vendor_id": "GenuineIntel", "torch_cpu_capability": "AVX2"}})
    assert nearest_golden_folder(golden_copy, AMD_ZEN3)[0].name == "intel-avx2"  # the kernel path first


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
"""


def test_cpu_identity_reads_the_first_processor_block(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    found = cpu_identity(path, capability="AVX512")
    assert found == {"vendor_id": "GenuineIntel", "model_name": "Intel(R) Xeon(R) Processor", "cpu_family": 6,
                     "model": 167, "torch_cpu_capability": "AVX512", "bf16_flags": ["amx_bf16", "avx512_bf16"]}
    assert describe(found) == ("GenuineIntel Intel(R) Xeon(R) Processor, family 6 model 167, torch kernel path "
                               "AVX512, bf16 flags: amx_bf16 avx512_bf16")
    path.write_text(CPUINFO.replace(" avx512_bf16", "").replace(" amx_bf16", ""))
    assert cpu_identity(path, capability="AVX512")["bf16_flags"] == []
    assert "bf16 flags: none" in describe(cpu_identity(path, capability="AVX512"))


def test_cpu_identity_without_proc_cpuinfo(tmp_path):
    found = cpu_identity(tmp_path / "absent", capability="DEFAULT")
    assert found["vendor_id"] is None and found["cpu_family"] is None and found["model"] is None
    assert found["bf16_flags"] is None and found["torch_cpu_capability"] == "DEFAULT"
    assert "family not recorded model not recorded" in describe(found)
    assert "bf16 flags: not recorded" in describe(found)


def test_this_machine_and_its_hardware_key():
    here = cpu_identity()
    assert set(here) == set(machine.COMPARED) | {"model_name"}
    key = machine.hardware_key()
    assert set(key) == {"cpu", "vendor_id", "cpu_family", "model", "bf16_flags", "cuda"}
    assert key["cpu"] == here["torch_cpu_capability"] and key["model"] == here["model"]
    json.dumps(key)  # goes into a json key


def test_module_is_torch_free_at_import_and_runs_as_a_command():
    check = subprocess.run([sys.executable, "-c", "import sys, evaluator.core.machine; print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-m", "evaluator.core.machine"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"machine: {describe(cpu_identity())}"


def test_journal_and_dry_run_cache_keys_change_with_the_machine(tmp_path, monkeypatch):
    """A journal or a cached before-score made on another CPU (same kernel-path label) is never reused."""
    import pandas as pd

    from evaluator.harness.dryrun import DryRunSettings, _scoring_key
    from evaluator.model.journal import run_description, run_key

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    rows = pd.DataFrame({"id": ["a"], "input": ["x"], "output": ["1"], "task": ["Task1"]})
    sets = {"forget": rows, "retain": rows.copy()}
    data = tmp_path / "data"
    data.mkdir()
    (data / "forget.jsonl").write_text("{}\n")
    keys = {}
    for name, hardware in (("icelake", ICELAKE), ("sapphire", SAPPHIRE)):
        key = {"cpu": hardware["torch_cpu_capability"], "vendor_id": hardware["vendor_id"],
               "cpu_family": hardware["cpu_family"], "model": hardware["model"],
               "bf16_flags": hardware["bf16_flags"], "cuda": None}
        monkeypatch.setattr("evaluator.model.journal.hardware_key", lambda key=key: key)
        monkeypatch.setattr("evaluator.harness.dryrun.hardware_key", lambda key=key: key)
        description = run_description(ckpt, sets, None, {"mode": "official"})
        assert description["hardware"] == key
        keys[name] = (run_key(description), _scoring_key({"m": "0"}, data, "train", DryRunSettings()))
    assert keys["icelake"][0] != keys["sapphire"][0]
    assert keys["icelake"][1] != keys["sapphire"][1]


def test_the_real_golden_folders(golden):
    """../shared/golden's machine.json files: Ice Lake's own record matches its folder, this machine is
    described in the sentence, and the EPYC folder records only vendor and kernel path."""
    folders = {path.parent.name: json.loads(path.read_text()) for path in golden.glob("*/machine.json")}
    assert {"official", "official-intel-icelake"} <= set(folders)
    assert machine.compared_fields(folders["official"]) == ["vendor_id", "torch_cpu_capability"]
    icelake = {key: folders["official-intel-icelake"][key] for key in (*machine.COMPARED, "model_name")}
    assert golden_folder_for(golden, icelake)[0] == golden / "official-intel-icelake"
    assert golden_folder_for(golden, AMD_ZEN4)[0] == golden / "official"
    assert golden_folder_for(golden, SAPPHIRE)[0] is None and golden_folder_for(golden, AMD_ZEN3)[0] is None
    folder, sentence = golden_folder_for(golden)
    print(f"\n{sentence}")
    assert describe(cpu_identity()) in sentence
    assert folder is None or matches(folders[folder.name], cpu_identity())


def test_a_forced_kernel_path_environment_runs_bfloat16_attention_in_a_child(tmp_path):
    """Forcing another CPU's kernel path (README "Another machine") must give a Python that runs bfloat16
    attention over 300 tokens: on a CPU with AMX, torch 2.13's flash kernel fails under ATEN_CPU_CAPABILITY=avx2,
    and the environment then turns flash attention off (and says so); elsewhere it is left as it is."""
    import os

    plain = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    assert machine.forced_path_environment(plain, tmp_path) == (plain, "")
    env, note = machine.forced_path_environment({**plain, "ATEN_CPU_CAPABILITY": "avx2"}, tmp_path)
    probe = subprocess.run([sys.executable, "-c", machine.FLASH_PROBE], env=env, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-500:]
    assert note in ("", machine.FLASH_OFF_NOTE)
    if note:  # the adapted environment differs from the plain one only by the sitecustomize folder first on the path
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "sitecustomize-avx2")
        unadapted = subprocess.run([sys.executable, "-c", machine.FLASH_PROBE],
                                   env={**plain, "ATEN_CPU_CAPABILITY": "avx2"}, capture_output=True)
        assert unadapted.returncode != 0  # the note is given only where the forced path fails without it
