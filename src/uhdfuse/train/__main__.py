"""``python -m uhdfuse.train --config configs/ipl-cpu.json [--run-dir DIR] [--resume] ...``"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from uhdfuse.config import Device
from uhdfuse.errors import UhdfuseError
from uhdfuse.train.config import load_config
from uhdfuse.train.loop import train
from uhdfuse.train.scenes import DEFAULT_DATA_DIR

# train()'s parameters and TrainConfig's keys as this tool's flags, for the messages that name them
FLAGS = {
    "run_dir": "--run-dir", "resume": "--resume", "weights": "--weights", "steps": "--steps",
    "stop_after": "--stop-after", "device": "--device", "data_dir": "--data-dir",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uhdfuse.train", description="Train the IPL fusion model.")
    parser.add_argument("--config", type=Path, required=True, help="training config (JSON), e.g. configs/ipl-cpu.json")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: the config's run_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    parser.add_argument("--weights", type=Path, help="final weights file (default: RUN_DIR/NAME.safetensors)")
    parser.add_argument("--steps", type=int, help="override the config's step count (changes the LR schedule)")
    parser.add_argument("--stop-after", type=int, help="stop with a checkpoint at this step (resume later)")
    parser.add_argument("--device", choices=[d.value for d in Device], help="override the config's device")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared HDR data (default ../shared/data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load_config(args.config)
        if args.steps is not None:
            cfg = replace(cfg, steps=args.steps)
        if args.device is not None:
            cfg = replace(cfg, device=args.device)
        summary = train(cfg, run_dir=args.run_dir, resume=args.resume, weights=args.weights,
                        data_dir=args.data_dir, stop_after=args.stop_after)
    except UhdfuseError as exc:
        sys.stderr.write(f"error: {exc.spelled(FLAGS)}\n")
        return exc.exit_code
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
