"""Entry point for a Hugging Face Space (Gradio SDK): ``app_file: demo/space.py`` in the Space's README.

Listens on 0.0.0.0 and on $PORT (7860 if unset), as Spaces expect. The Space variable DEMO_MODEL chooses the
package (``hf://OWNER/NAME@REVISION`` — pin it — or a folder in the Space); without it, the bundled demo package.
Any command-line arguments are passed on to ``python -m demo``.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Spaces run this file as a script

from demo.__main__ import main  # noqa: E402

if __name__ == "__main__":
    model = ["--model", os.environ["DEMO_MODEL"]] if os.environ.get("DEMO_MODEL") else []
    raise SystemExit(main(["--host", "0.0.0.0", "--port", os.environ.get("PORT", "7860"), *model, *sys.argv[1:]]))
