"""`qfsum pipelines list` and `qfsum pipelines save`: the packaged pipelines, and saving one as a folder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def cmd_save(args: argparse.Namespace) -> None:
    """Save a pipeline (packaged name, folder or pipeline.json) as a folder, without loading its models."""
    from ..errors import QfsumError
    from ..pipeline import CONFIG_FILE, SAVED_MODELS, load_config
    from ..saving import save_config

    out = Path(args.directory)
    if out.exists() and not out.is_dir():
        raise QfsumError(f"{out}: exists and is not a folder")
    config = load_config(args.pipeline)  # an unknown name fails here, before anything is written
    saved = save_config(config.to_dict(), out, args.copy_models, SAVED_MODELS, CONFIG_FILE)
    size = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
    print(f"saved '{config.name}' to {saved} ({size / 1e6:.1f} MB); use it with --pipeline {saved}")


def add_pipeline_commands(parser: argparse.ArgumentParser, cmd_list: Callable[[argparse.Namespace], None]) -> None:
    """Add `list` (what a bare `qfsum pipelines` does too) and `save` under `qfsum pipelines`."""
    # a bare `qfsum pipelines -v` runs this parser, which is no leaf: `finish_help` gives -v to leaves only
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show library warnings, progress bars and log lines (default: off)")
    actions = parser.add_subparsers(dest="action", metavar="{list,save}")
    listing = actions.add_parser("list", help="list the packaged pipelines (the same as a bare `qfsum pipelines`)")
    listing.set_defaults(func=cmd_list)
    save = actions.add_parser(
        "save", help="save a pipeline as a folder that --pipeline DIR and Pipeline.load read",
        description="Save a pipeline as a folder: pipeline.json plus copies of its local model folders. "
                    "With --copy-models, packaged models (qfsum's shipped weights, MiniLM, SmolLM2, and an "
                    "adapter's base model) are copied too, so the folder loads on a machine without them.")
    save.add_argument("pipeline", help="packaged pipeline name, saved folder or pipeline.json")
    save.add_argument("directory", help="output folder (created if needed; files of the same names are overwritten)")
    save.add_argument("--copy-models", action="store_true",
                      help="copy packaged models into the folder too, so it is self-contained")
    save.set_defaults(func=cmd_save)
