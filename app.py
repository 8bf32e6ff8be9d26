"""The chat UI, started the way Gradio apps are: `python app.py [rag serve flags]` is `rag serve`,
and `gradio app.py [-- flags]` (run from this folder) runs the same and reloads the UI when its
code changes.

The UI is the `rag.ui` package (`rag.ui.blocks.build_app`); this file only starts it.

    >>> from gradio_client import Client  # doctest: +SKIP
    >>> Client("http://127.0.0.1:7860/").predict("What did Blinken warn?", api_name="/ask")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys

# Offline: no usage analytics, no model-hub calls. Set before gradio or transformers are imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gradio as gr

from rag.cli import app_options, launch_served, open_served
from rag.ui.blocks import build_app

if __name__ == "__main__":
    # `gradio app.py` runs this file again on every change, minus the NO_RELOAD parts: the model
    # and index load once, and the module-level `demo` it finds is rebuilt and swapped in.
    if gr.NO_RELOAD:
        rag, args = open_served(sys.argv[1:])
    demo = build_app(rag, **app_options(args))  # `--watch PATHS`, `--users FILE`: as `rag serve`
    if gr.NO_RELOAD:
        sys.exit(launch_served(demo, rag, args))
