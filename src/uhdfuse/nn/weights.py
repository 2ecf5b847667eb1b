"""IPL weight files: ``NAME.safetensors`` plus a JSON manifest ``NAME.json`` beside it.

The manifest carries everything needed to rebuild the model (its
:class:`~uhdfuse.nn.ipl.IPLConfig`) and the sha256 of the weights file, checked on
every load. No pickle anywhere: tensors go through safetensors, metadata through JSON.

Manifest keys: ``format`` ("uhdfuse-ipl/1"), ``architecture`` ("ipl"), ``variant``,
``config``, ``sha256``, ``parameters``, ``trained`` (bool), and free-form
``notes`` / ``training`` / ``metrics`` the training issue fills in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from uhdfuse.errors import ModelError, first_line
from uhdfuse.nn.ipl import IPL, IPLConfig, count_parameters

FORMAT = "uhdfuse-ipl/1"
# Looked up in this order in the weights folder when no file is named.
DEFAULT_NAMES = ("ipl-base", "ipl-test")


def weights_dir() -> Path:
    """The weights folder: the repository's top-level ``weights/`` in a source checkout,
    else ``uhdfuse/weights/`` inside an installed package (see the install note in docs/ipl.md)."""
    checkout = Path(__file__).resolve().parents[3] / "weights"
    installed = Path(__file__).resolve().parents[1] / "weights"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


def manifest_path(path: Path) -> Path:
    """The manifest beside weights file ``path``."""
    return Path(path).with_suffix(".json")


def default_weights() -> Path:
    """The first of :data:`DEFAULT_NAMES` present in :func:`weights_dir`."""
    folder = weights_dir()
    for name in DEFAULT_NAMES:
        candidate = folder / f"{name}.safetensors"
        if candidate.is_file():
            return candidate
    raise ModelError(f"no IPL weights ({', '.join(DEFAULT_NAMES)}) found", folder)


def save_weights(model: IPL, path: Path, *, variant: str, trained: bool, **extra: object) -> dict:
    """Write ``path`` (.safetensors) and its manifest; returns the manifest."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = st_save(state, metadata={"format": FORMAT})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest = {
        "format": FORMAT,
        "architecture": "ipl",
        "variant": variant,
        "config": model.cfg.to_dict(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "parameters": count_parameters(model),
        "trained": trained,
        **extra,
    }
    manifest_path(path).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read_manifest(path: Path) -> dict:
    """The manifest of weights file ``path``; ModelError when missing or malformed."""
    mpath = manifest_path(path)
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ModelError("weights manifest missing", mpath) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"weights manifest unreadable ({first_line(exc)})", mpath) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"not a {FORMAT} manifest", mpath)
    return manifest


def load_weights(path: Path | None = None) -> tuple[IPL, dict]:
    """Build the model a weights file describes and load it (CPU, eval mode).

    ``path=None`` loads :func:`default_weights`. Raises ModelError when the file is
    missing, its sha256 differs from the manifest, or it does not fit the config.
    """
    path = default_weights() if path is None else Path(path)
    manifest = read_manifest(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"weights unreadable ({exc.strerror or exc})", path) from None
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise ModelError("sha256 does not match the manifest (corrupt or replaced file)", path)
    known = {f.name for f in fields(IPLConfig)}
    config = manifest.get("config")
    if not isinstance(config, dict) or set(config) - known:
        raise ModelError(f"config has unknown keys {sorted(set(config or {}) - known)}", path)
    try:
        model = IPL(IPLConfig(**config))
        try:
            state = st_load(data)
        except SafetensorError as exc:
            raise ModelError(f"not a safetensors file ({first_line(exc)})", path) from None
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelError(f"weights do not fit the IPL architecture ({first_line(exc)})", path) from None
    model.eval()
    return model, manifest

