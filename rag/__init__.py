"""Offline retrieval-augmented question answering with cited sentences.

Every model ships in a pip package, so nothing may reach for a model hub: the offline switches
are set here, once, before any module of the package (or of the harness, which imports it) can
import huggingface_hub, transformers or gradio. A value the user set is kept.
"""

import os

for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("GRADIO_ANALYTICS_ENABLED", "False")):
    os.environ.setdefault(_name, _value)
