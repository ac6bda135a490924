"""benchmarks/bench_targets.py: the merging of result files (every run keeps the machine it was measured on,
since scores move with the CPU, and the table says which targets were measured where), and the tasks its
calibrated run is told the MIA scores."""

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


def test_the_calibrated_run_is_told_the_tasks_the_targets_mia_members_are_of(tmp_path):
    """As a participant reads it off the release (its members are all Task3 forget documents): a member's id is
    a forget row's id or the stem of its ids; members of every task leave the setting unset."""
    import json

    bench = _bench_targets()
    stub = ROOT / "data_stub"
    rows = [json.loads(line) for line in (stub / "data" / "forget_train-00000-of-00001.jsonl").read_text().splitlines()]
    by_task = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row["id"])
    for name, members, expected in [("one", [by_task["Task2"][0][:-3], by_task["Task2"][1]], "Task2"),
                                    ("every", [ids[0] for ids in by_task.values()], None)]:
        mia = tmp_path / name
        mia.mkdir()
        for file, ids in (("member.jsonl", members), ("nonmember.jsonl", ["n1"])):
            (mia / file).write_text("".join(json.dumps({"id": i, "document": "x"}) + "\n" for i in ids))
        assert bench.scored_tasks({"data": stub, "split": "train", "mia": mia}) == expected
