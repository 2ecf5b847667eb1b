"""`uhdfuse batch`: a whole shoot fused unattended, resumed, interrupted, on Ray."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from uhdfuse.batch import BatchOptions, Job, Outcome, Worker, output_names, run_batch, settings_hash
from uhdfuse.cli import app
from uhdfuse.config import Engine, Executor, MergeConfig, OutputFormat
from uhdfuse.errors import Message, OutputError, UsageError, param
from uhdfuse.shoot import find_groups
from uhdfuse.synthetic import procedural_scene

from .test_shoot import T0, make_shoot, write_frame

runner = CliRunner()
N_BRACKETS = 5  # make_shoot's brackets


def _run(*args: str, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin, catch_exceptions=False)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tif"))}


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shoot")
    make_shoot(folder)
    return folder


@pytest.fixture(scope="module")
def reference_run(shoot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shoot fused once, uninterrupted, with 2 workers: the bytes every other run must match."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = _run("batch", shoot, "-o", out, "--workers", "2")
    assert result.exit_code == 0, result.stderr
    return out


def test_batch_fuses_every_bracket_with_json_lines_and_report(shoot: Path, reference_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run("batch", shoot, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds JSON lines only
    assert len(lines) == N_BRACKETS and {line["status"] for line in lines} == {"ok"}
    assert sorted(Path(line["output"]).name for line in lines) == sorted(_bytes(out))
    names = sorted(_bytes(out))
    assert names[0] == "2026-11-20_A_0001_3.tif" and "2026-11-20_A_0008_5.tif" in names
    pixels = tifffile.imread(out / "2026-11-20_A_0008_5.tif")
    assert pixels.dtype == np.uint16 and pixels.shape == (64, 96, 3)

    report = json.loads((out / "uhdfuse-report.json").read_text())
    assert report["exit_code"] == 0
    assert report["counts"] == {"ok": 5, "skipped": 0, "failed": 0, "interrupted": 0, "not_fused": 5}
    assert sorted(g["kind"] for g in report["not_fused"]) == ["single"] * 4 + ["unreadable"]
    assert not list(out.glob(".*.tmp"))
    # 1 worker and 2 workers write the same bytes
    assert _bytes(out) == _bytes(reference_run)


def test_resume_skips_unchanged_and_redoes_changed(shoot: Path, tmp_path: Path) -> None:
    src = tmp_path / "shoot"
    shutil.copytree(shoot, src)
    out = tmp_path / "out"
    assert _run("batch", src, "-o", out).exit_code == 0
    first = _bytes(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}

    os.utime(src / "A_0002.jpg")  # touched, same content: still up to date (hash checked)
    again = _run("batch", src, "-o", out, "--json")
    assert again.exit_code == 0
    assert {json.loads(line)["status"] for line in again.stdout.splitlines()} == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == stamps

    # new content in one frame of the first bracket: that bracket alone is redone
    scene = procedural_scene(64, 96, seed=4) * 1.2  # make_shoot's scene, re-edited brighter
    write_frame(src / "A_0002.jpg", scene, bias=-2, when=T0)
    redo = _run("batch", src, "-o", out, "--json")
    assert redo.exit_code == 0, redo.stderr
    status = {Path(j["target"]).name: j["status"] for j in map(json.loads, redo.stdout.splitlines())}
    assert status.pop("2026-11-20_A_0001_3.tif") == "ok"
    assert set(status.values()) == {"skipped"}
    assert _bytes(out)["2026-11-20_A_0001_3.tif"] != first["2026-11-20_A_0001_3.tif"]

    # other settings: everything redone
    png = _run("batch", src, "-o", out, "--bit-depth", "8", "--json")
    assert {json.loads(line)["status"] for line in png.stdout.splitlines()} == {"ok"}


def test_interrupted_batch_resumes_to_identical_outputs(shoot: Path, reference_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    groups = find_groups([shoot]).groups
    options = BatchOptions(output_dir=out, workers=2)

    def ctrl_c_after_first(outcome, done: int, total: int) -> None:  # noqa: ANN001
        raise KeyboardInterrupt  # what Ctrl-C does to the parent while workers run

    summary = run_batch(groups, options, on_outcome=ctrl_c_after_first)
    assert summary.interrupted and summary.exit_code == 130
    done = [o for o in summary.outcomes if o.status == "ok"]
    assert 1 <= len(done) < N_BRACKETS
    assert not list(out.glob(".*.tmp"))  # no half-written output anywhere
    written = _bytes(out)
    assert set(written) == {o.name for o in done}  # every output there is a finished one...
    assert all(written[name] == reference_run.joinpath(name).read_bytes() for name in written)  # ...and complete
    assert json.loads((out / "uhdfuse-report.json").read_text())["interrupted"] is True

    result = _run("batch", shoot, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()]
    assert statuses.count("skipped") == len(done) and statuses.count("ok") == N_BRACKETS - len(done)
    assert _bytes(out) == _bytes(reference_run)


def test_interrupt_while_recording_a_finished_bracket_keeps_it_resumable(
    shoot: Path, reference_run: Path, tmp_path: Path, monkeypatch
) -> None:
    """Ctrl-C landing while the manifest is written must not orphan the finished output
    (the resumed run would refuse to overwrite a file it cannot prove is its own)."""
    import uhdfuse.batch.manifest as manifest_module

    out = tmp_path / "out"
    real_write = manifest_module.write_json_atomic
    calls = []

    def interrupted_write(path: Path, data: dict) -> None:
        calls.append(path.name)
        if len(calls) == 1:  # the first manifest update: the signal arrives mid-write
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(manifest_module, "write_json_atomic", interrupted_write)
    summary = run_batch(find_groups([shoot]).groups, BatchOptions(output_dir=out, workers=1))
    assert summary.interrupted
    manifest = json.loads((out / manifest_module.MANIFEST_NAME).read_text())["outputs"]
    assert set(manifest) == {p.name for p in out.glob("*.tif")} and manifest
    assert not list(out.glob(".*.tmp"))

    monkeypatch.setattr(manifest_module, "write_json_atomic", real_write)
    result = _run("batch", shoot, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert _bytes(out) == _bytes(reference_run)


def test_failing_brackets_do_not_stop_the_batch_exit_3_then_1(shoot: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "2026-11-20_A_0010_3.tif").mkdir(parents=True)  # cannot be written: a folder is in the way
    result = _run("batch", shoot, "-o", out, "--json")
    assert result.exit_code == 3
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    failed = [line for line in lines if line["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["output"] is None and "A_0010_3.tif" in failed[0]["error"]
    assert sum(line["status"] == "ok" for line in lines) == N_BRACKETS - 1
    assert "failed" in result.stderr

    # an output this batch did not write is never overwritten without --force
    other = tmp_path / "other"
    other.mkdir()
    names = output_names([g for g in find_groups([shoot]).groups if g.kind == "bracket"])
    for name in names:
        (other / name).write_bytes(b"someone else's file")
    assert _run("batch", shoot, "-o", other).exit_code == 1
    assert (other / names[0]).read_bytes() == b"someone else's file"


def test_dry_run_shows_groups_and_writes_nothing(shoot: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run("batch", shoot, "-o", out, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    groups = [json.loads(line) for line in result.stdout.splitlines()]
    assert [g["kind"] for g in groups].count("bracket") == N_BRACKETS
    assert all(g["reason"] for g in groups)
    assert next(g for g in groups if g["kind"] == "bracket")["output"] == "2026-11-20_A_0001_3.tif"
    assert not out.exists()
    table = _run("batch", shoot, "--dry-run")  # the table is the answer: on stdout (`| less`)
    assert table.exit_code == 0
    assert "bias +0/-2/+2" in table.stdout and "unreadable" in table.stdout


def test_paths_from_stdin_and_name_template(shoot: Path, tmp_path: Path) -> None:
    files = [str(p) for p in sorted(shoot.glob("A_001[0-5].jpg"))]
    out = tmp_path / "out"
    args = ("batch", "-", "-o", out, "--name", "{camera}_{index}", "--format", "png")
    result = _run(*args, stdin="\n".join(files) + "\n")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["Alpha-A7_0001.png", "Alpha-A7_0002.png"]


def test_output_names_never_collide_and_templates_are_checked(shoot: Path) -> None:
    brackets = [g for g in find_groups([shoot]).groups if g.kind == "bracket"]
    names = output_names(brackets, "{date}")
    assert names == ["2026-11-20.tif", "2026-11-20-2.tif", "2026-11-20-3.tif", "2026-11-20-4.tif", "2026-11-20-5.tif"]
    with pytest.raises(UsageError, match="template"):
        output_names(brackets, "{iso}")
    with pytest.raises(UsageError):
        output_names(brackets, "../{first}")


def test_consistent_exposure_normalisation(tmp_path: Path) -> None:
    """Two brackets of one scene, the second metered 1.5 EV brighter: --consistent matches them."""
    scene = procedural_scene(64, 96, seed=2) * 0.5
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for k, offset in enumerate((0.0, 1.5)):
        for n, bias in enumerate((0, -2, 2)):
            when = T0 + timedelta(seconds=30 * k + n)
            write_frame(shoot / f"s{k}_{n}.jpg", scene * 2.0**offset, bias=bias, when=when, base_ev=offset)
    groups = find_groups([shoot]).groups
    means = {}
    for consistent in (False, True):
        out = tmp_path / f"out{consistent}"
        summary = run_batch(groups, BatchOptions(output_dir=out, consistent=consistent))
        assert summary.exit_code == 0
        means[consistent] = [float(tifffile.imread(out / o.name).mean()) / 65535 for o in summary.outcomes]
    apart, together = abs(means[False][0] - means[False][1]), abs(means[True][0] - means[True][1])
    assert apart > 0.05, means  # each output in its own exposure
    assert together < apart / 4, means  # one scene brightness, about one output value
    assert summary.exposure_anchor is not None


def test_ray_executor_matches_local(shoot: Path, reference_run: Path, tmp_path: Path, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    src = str(Path(__file__).resolve().parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        summary = run_batch(find_groups([shoot]).groups, BatchOptions(output_dir=out, executor="ray", config=MergeConfig()))
    finally:
        ray.shutdown()
    assert summary.exit_code == 0, [o.error for o in summary.outcomes]
    assert _bytes(out) == _bytes(reference_run)
    print(f"ray test: {time.perf_counter() - start:.1f} s")


def test_batch_options_check_their_own_settings(tmp_path: Path) -> None:
    options = BatchOptions(output_dir=str(tmp_path), format="png", executor="ray")
    assert options.format is OutputFormat.PNG and options.suffix == ".png" and options.executor is Executor.RAY
    with pytest.raises(UsageError, match="workers must be at least 1") as info:
        BatchOptions(output_dir=tmp_path, workers=0)
    assert info.value.spelled({"workers": "--workers"}).startswith("--workers must")
    with pytest.raises(UsageError, match="template"):
        BatchOptions(output_dir=tmp_path, template="{iso}")
    with pytest.raises(UsageError):  # a JPEG holds 8 bits per channel
        BatchOptions(output_dir=tmp_path, format="jpg", config=MergeConfig(bit_depth=16))
    with pytest.raises(UsageError, match="executor"):
        BatchOptions(output_dir=tmp_path, executor="slurm")
    with pytest.raises(UsageError, match="exposure_anchor"):  # consistent computes its own
        BatchOptions(output_dir=tmp_path, consistent=True, config=MergeConfig(exposure_anchor=2.0))


def test_settings_hash_is_of_the_values_that_change_the_output() -> None:
    default = settings_hash(MergeConfig(), ".tif")
    assert settings_hash(MergeConfig(engine="ipl"), ".tif") == default
    assert settings_hash(MergeConfig(engine=Engine.IPL), ".tif") == default
    assert settings_hash(MergeConfig(force=True, max_pixels=1000), ".tif") == default  # they refuse, never change bytes
    assert settings_hash(MergeConfig(engine="mertens"), ".tif") != default != settings_hash(MergeConfig(), ".png")


def _job(tmp_path: Path) -> Job:
    return Job(1, "a.tif", (str(tmp_path / "a.jpg"),), str(tmp_path / "a.tif"), MergeConfig(), Message("test"))


def test_a_failed_outcome_keeps_the_settings_its_error_names_across_processes(tmp_path: Path) -> None:
    error = OutputError(f"already exists; use {param('force', True)} to overwrite", tmp_path / "a.tif")
    outcome = pickle.loads(pickle.dumps(Outcome.failed(_job(tmp_path), error)))  # as it comes back from a worker
    assert outcome.status == "failed" and outcome.error == str(error)
    spelled = outcome.error.spelled({"force": "--force"})
    assert spelled == f"{tmp_path / 'a.tif'}: already exists; use --force to overwrite"


def test_a_sigterm_between_brackets_stops_the_next_one_from_starting(tmp_path: Path) -> None:
    worker = Worker()
    worker.on_term(signal.SIGTERM, None)  # no bracket running: nothing to interrupt, nothing raised
    outcome = worker.run(_job(tmp_path))
    assert outcome.status == "interrupted" and "before this bracket started" in outcome.error
    assert not (tmp_path / "a.tif").exists()
