#!/usr/bin/env python
"""Web demo: type a sentence, watch the sign video the model generates for it.

    pip install -e .[demo]
    python app.py --checkpoint checkpoints                       # then open http://127.0.0.1:7860
    python app.py --checkpoint checkpoints/step_0000600 --port 8080 --host 0.0.0.0

--checkpoint takes a training output directory (its best checkpoint, else the latest), a checkpoint directory
or a pipeline directory, as inference.py does; the page can switch to another one. The page has example
prompts (the bundled clips' captions), sampler, steps, guidance and seed controls, a progress bar while it
samples, the video with a strip of its frames, and GIF and MP4 downloads. It listens on 127.0.0.1 only unless
--host says otherwise: the page can load any checkpoint path on this machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import signal
import sys
from pathlib import Path

from text2sign.cli import run_with_one_line_errors

CAPTIONS_DIR = Path(__file__).resolve().parent / "training_data"  # the bundled clips' captions become example prompts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="training output dir, checkpoint dir or pipeline dir")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        import torch

        from text2sign.demo import PAGE_CSS, SignDemo, build_page, example_prompts

        if importlib.util.find_spec("gradio") is None:  # before the checkpoint loads: no wait for this message
            raise ValueError("the web demo needs gradio: pip install -e .[demo]")
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        demo = SignDemo(args.checkpoint, device=device)  # a bad --checkpoint stops here, before the server starts
        # SIGTERM (kill, a service manager) shuts down like Ctrl-C: gradio closes the server and the finally below runs.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            print(f"app.py: serving {demo.pipeline_dir} on http://{args.host}:{args.port}", flush=True)
            build_page(demo, example_prompts(CAPTIONS_DIR)).launch(server_name=args.host, server_port=args.port, share=False, css=PAGE_CSS)
        finally:
            shutil.rmtree(demo.output_dir, ignore_errors=True)  # the generated files (gradio keeps its own copies)
        return 0

    return run_with_one_line_errors("app.py", body)


if __name__ == "__main__":
    sys.exit(main())
