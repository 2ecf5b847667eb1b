"""Ctrl-C (SIGINT) and SIGTERM to a real ``uhdfuse`` process: nothing partial is left.

``merge`` exits 130 on SIGINT and 143 on SIGTERM with no output and no temporary
file; ``batch`` keeps the brackets it finished, leaves nothing half-written, and a
rerun finishes with outputs byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import exiv2
import pytest
from typer.testing import CliRunner

from uhdfuse.cli import app

from .conftest import tree_hashes

SRC = Path(__file__).resolve().parents[1] / "src"
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def _write_big_bracket(folder: Path, width: int, height: int, seed: int) -> None:
    """A -2/0/+2 EV JPEG bracket large enough that a merge takes seconds (upscaled, EXIF kept)."""
    from uhdfuse.synthetic import write_example_bracket

    small = write_example_bracket(folder.parent / f".src{seed}", width=480, height=320, seed=seed, formats=("jpeg",))
    folder.mkdir(parents=True)
    for path in small["jpeg"]:
        big = cv2.resize(cv2.imread(str(path)), (width, height), interpolation=cv2.INTER_CUBIC)
        target = folder / path.name
        cv2.imwrite(str(target), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
        source = exiv2.ImageFactory.open(str(path))
        source.readMetadata()
        image = exiv2.ImageFactory.open(str(target))
        image.readMetadata()
        image.setExifData(source.exifData())
        image.writeMetadata()


@pytest.fixture(scope="module")
def big_bracket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big") / "bracket"
    _write_big_bracket(folder, 3000, 2000, seed=2)
    return folder


def _interactive_signals() -> None:
    """In the child: Ctrl-C as in a terminal. A test runner started as a background job
    of a non-interactive shell ignores SIGINT, children inherit that, and Python then
    installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*args: object) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "uhdfuse", *[str(a) for a in args]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_interactive_signals,
    )  # fmt: skip


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"process ended (rc {proc.returncode}) before the moment to interrupt it: {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("timed out waiting for the moment to interrupt")
        time.sleep(0.005)


def _temps(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(".") and n.endswith(".tmp")] if folder.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["while_fusing", "while_writing"])
def test_signal_during_merge_leaves_no_output(sig: signal.Signals, moment: str, big_bracket: Path, tmp_path: Path) -> None:
    before = tree_hashes(big_bracket)
    out = tmp_path / "out"
    out.mkdir()
    proc = _start("merge", big_bracket, "-o", out / "fused.tif")
    if moment == "while_writing":
        _wait_for(lambda: bool(_temps(out)), proc)  # the hidden temporary file exists: mid-write
    else:
        time.sleep(2.0)  # start-up and decoding take ~1 s; fusion and writing ~2 s more
        assert proc.poll() is None, "merge finished before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == CODES[sig], stderr
    assert f"{WORDS[sig]}: no output was written" in stderr
    assert "Traceback" not in stderr
    assert os.listdir(out) == []  # neither the output nor the temporary file
    assert tree_hashes(big_bracket) == before


# --------------------------------------------------------------------------- batch


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four brackets in four folders, each big enough (1200x800) to take a moment to fuse."""
    root = tmp_path_factory.mktemp("shoot")
    for i in range(4):
        _write_big_bracket(root / f"scene{i}", 1200, 800, seed=10 + i)
    return root


BATCH_ARGS = ("--folders", "--name", "{index}_{first}", "--workers", "1")


@pytest.fixture(scope="module")
def uninterrupted(shoot: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("reference") / "out"
    result = CliRunner().invoke(app, ["batch", str(shoot), "-o", str(out), *BATCH_ARGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {p.name: p.read_bytes() for p in out.glob("*.tif")}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_batch_keeps_finished_outputs_and_resumes_identically(
    sig: signal.Signals, shoot: Path, uninterrupted: dict[str, bytes], tmp_path: Path
) -> None:
    assert len(uninterrupted) == 4
    before = tree_hashes(shoot)
    out = tmp_path / "out"
    proc = _start("batch", shoot, "-o", out, *BATCH_ARGS)
    _wait_for(lambda: out.exists() and any(out.glob("*.tif")), proc, timeout=60)  # the first bracket is done
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == CODES[sig], stderr
    assert "rerun the same command to resume" in stderr and "Traceback" not in stderr

    finished = {p.name: p.read_bytes() for p in out.glob("*.tif")}
    assert 1 <= len(finished) < 4
    assert all(uninterrupted[name] == data for name, data in finished.items())  # complete, not partial
    assert _temps(out) == []
    assert tree_hashes(shoot) == before

    resumed = _start("batch", shoot, "-o", out, *BATCH_ARGS, "--json")
    stdout, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr
    statuses = sorted(line.split('"status": "')[1].split('"')[0] for line in stdout.splitlines())
    assert statuses.count("skipped") == len(finished) and statuses.count("ok") == 4 - len(finished)
    assert {p.name: p.read_bytes() for p in out.glob("*.tif")} == uninterrupted
    assert _temps(out) == [] and tree_hashes(shoot) == before


def test_ctrl_c_while_torch_is_imported_is_acted_on_after_the_import() -> None:
    # A KeyboardInterrupt raised inside torch's C++ initialisation aborted the process
    # ("terminate called ... KeyboardInterrupt", exit -6) instead of "interrupted: no
    # output was written" and 130; the pipeline holds the signal until the import is done.
    from uhdfuse.pipeline import _signals_held

    finished = False
    with pytest.raises(KeyboardInterrupt):
        with _signals_held():
            signal.raise_signal(signal.SIGINT)
            finished = True  # the signal did not interrupt the block...
    assert finished  # ...and was raised after it, as Ctrl-C's handler raises it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
