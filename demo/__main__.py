"""python -m demo: the Gradio app for uploaded (or webcam-recorded) clips.

With no --model it serves the bundled default package (demo/default_model): a small model trained on the
project's synthetic faces, labelled as such in the page. Give --model a package folder, or
hf://OWNER/NAME@REVISION for a Hub package (pin the revision; downloaded once, then cached).

Examples:
  python -m demo                                   # bundled demo weights on http://127.0.0.1:7860
  python -m demo --model packages/smic --host 0.0.0.0 --port 8080
  python -m demo --model hf://lab/mer-smic@v1 --share
"""

from __future__ import annotations

import argparse
import logging

from inference.errors import InputError, cli
from inference.video import VideoLimits

from .app import DEFAULT_MODEL, Limits, RunFolder, build_app, launch


def build_parser() -> argparse.ArgumentParser:
    d = Limits()
    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="model package folder or hf://OWNER/NAME[@REV] (default: the bundled synthetic-data demo "
                        "package)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 for every interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                   help="where the model runs (default auto)")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb,
                   help=f"largest upload (default {d.max_upload_mb:g} MB)")
    p.add_argument("--max-seconds", type=float, default=d.max_seconds,
                   help=f"longest clip (default {d.max_seconds:g} s)")
    p.add_argument("--queue-size", type=int, default=d.queue_size,
                   help=f"requests that may wait; more are turned away (default {d.queue_size})")
    p.add_argument("--keep-files", type=int, default=d.keep_files_s, metavar="SECONDS",
                   help=f"delete uploads and results this long after they arrive (default {d.keep_files_s} s)")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help=f"clips analysed at once (default {d.concurrency})")
    p.add_argument("--spotter", default=None, metavar="SPOTTER",
                   help="a learned spotter instead of the training-free one: its JSON file or package folder (written "
                        "by python -m training.spot_learn) or hf://OWNER/NAME@REV")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("max_upload_mb", "max_seconds", "queue_size", "concurrency", "keep_files"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from inference.runtime import Predictor
    from inference.spotting import SpotParams, load_spotter

    spot = SpotParams(spotter=args.spotter)
    if args.spotter:
        load_spotter(args.spotter, spot)  # a wrong file is refused before the server starts
    limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, queue_size=args.queue_size,
                    concurrency=args.concurrency, keep_files_s=args.keep_files)
    predictor = Predictor(args.model, device=args.device,
                          limits=VideoLimits(max_frames=limits.max_frames, max_seconds=limits.max_seconds,
                                             cli_hints=False))
    print(predictor.describe(), flush=True)
    folder = RunFolder()  # uploads and results of this run; removed when it stops (Ctrl-C or SIGTERM)
    try:
        app = build_app(predictor, limits, source=args.model, spot=spot)
        app.analyser.warm_up(next(iter(app.examples), None))
        launch(app, host=args.host, port=args.port, share=args.share)
    finally:
        folder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
