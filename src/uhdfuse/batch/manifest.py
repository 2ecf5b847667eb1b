"""The resume manifest of an output folder, and the batch report, written atomically.

``<output>/.uhdfuse-batch.json`` holds, for every finished output, the settings
hash and, per input, its size, mtime (ns) and SHA-256. An output is up to date when
it exists, the settings hash matches and every input is unchanged: size and mtime
equal (cheap: one ``stat``), or else, when only the mtime moved (a copy, a
``touch``), the SHA-256 equal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from uhdfuse.batch.jobs import Outcome
from uhdfuse.config import MergeConfig
from uhdfuse.version import __version__

MANIFEST_NAME = ".uhdfuse-batch.json"
REPORT_NAME = "uhdfuse-report.json"


def settings_hash(config: MergeConfig, suffix: str) -> str:
    """SHA-256 of everything that changes an output's bytes (``force`` and
    ``max_pixels`` decide whether a merge runs, not what it writes).

    Enum settings enter as their values (``"ipl"``), so the hash is that of the
    settings as written, whichever way they were given.
    """
    settings = dataclasses.asdict(dataclasses.replace(config, force=False))
    settings.pop("max_pixels", None)
    text = json.dumps({"config": settings, "suffix": suffix, "uhdfuse": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(path: Path) -> dict:
    """size, mtime (ns) and SHA-256 of one file."""
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}


def _unchanged(recorded: dict) -> bool:
    try:
        st = os.stat(recorded["path"])
    except OSError:
        return False
    if st.st_size != recorded["size"]:
        return False
    if st.st_mtime_ns == recorded["mtime_ns"]:
        return True
    return fingerprint(Path(recorded["path"]))["sha256"] == recorded["sha256"]


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON under a temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:  # an interrupt included: never leave the temporary file behind
        temp.unlink(missing_ok=True)
        raise


@dataclass
class Manifest:
    """The resume manifest of one output folder: output name -> its entry."""

    folder: Path
    outputs: dict[str, dict]

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """The manifest in ``folder`` (empty when absent or unreadable)."""
        try:
            data = json.loads((folder / MANIFEST_NAME).read_text())
        except (OSError, ValueError):
            data = {}
        outputs = data.get("outputs", {}) if isinstance(data, dict) else {}
        return cls(folder, outputs)

    def written(self, name: str) -> dict | None:
        """The entry of output ``name`` when the output exists: a file this batch wrote."""
        entry = self.outputs.get(name)
        return entry if entry is not None and (self.folder / name).exists() else None

    @staticmethod
    def up_to_date(entry: dict, inputs: Sequence[str], settings: str) -> bool:
        """True when ``entry`` was fused with ``settings`` from ``inputs``, all unchanged since."""
        recorded = entry["inputs"]
        return (
            entry.get("settings") == settings
            and [r["path"] for r in recorded] == list(inputs)
            and all(_unchanged(r) for r in recorded)
        )

    def record(self, outcomes: Iterable[Outcome], settings: str) -> None:
        """Add fused brackets (fused with ``settings``) and write the manifest."""
        for o in outcomes:
            self.outputs[o.name] = {"settings": settings, "inputs": list(o.hashes), "result": o.result}
        write_json_atomic(self.folder / MANIFEST_NAME, {"version": 1, "outputs": self.outputs})
