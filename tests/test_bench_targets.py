"""benchmarks/bench_targets.py's merging of result files: every run keeps the machine it was measured on
(scores move with the CPU), and the table says which targets were measured where."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_targets():
    spec = importlib.util.spec_from_file_location("bench_targets", ROOT / "benchmarks" / "bench_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(machine, method, final):
    run = {"method": method, "seed": 0, "final": final, "task_aggregate": final, "mia": final, "mmlu": 1.0}
    report = {"seeds": [0], "extra": {}, "targets": {"stub-small": {
        "variant": "stub", "before": {"mmlu": 1.0}, "runs": [run], "held_out": False}}}
    if machine is not None:
        report["machine"] = machine
    return report


def test_merged_runs_keep_their_machine_and_the_table_names_it(capsys):
    bench = _bench_targets()
    merged = bench.merge_reports([_report(None, "capped_gd", 0.80), _report("AMD EPYC", "npo", 0.50),
                                  _report("Intel Xeon", "capped_gd", 0.85)])
    runs = {r["method"]: r for r in merged["targets"]["stub-small"]["runs"]}
    assert runs["capped_gd"]["final"] == 0.85  # the later file's runs of a method replace the earlier's
    assert runs["capped_gd"]["machine"] == "Intel Xeon"
    assert runs["npo"]["machine"] == "AMD EPYC"
    bench.print_table(merged)
    out = capsys.readouterr().out
    assert "  AMD EPYC: stub-small" in out and "  Intel Xeon: stub-small" in out
    assert "not recorded" not in out  # the file without a machine lost its only run to the later file


def test_a_file_without_a_machine_reads_not_recorded(capsys):
    bench = _bench_targets()
    bench.print_table(bench.merge_reports([_report(None, "capped_gd", 0.80)]))
    assert "  not recorded: stub-small" in capsys.readouterr().out
