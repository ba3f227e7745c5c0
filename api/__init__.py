"""The wire: everything that talks to Grok Imagine through API in One.

Knows nothing of ComfyUI, torch or ``nodes/``. It re-exports nothing: ComfyUI imports the node
declarations at start-up, and they need only ``errors``, ``validation``, ``models`` and
``task``, so callers import what they use from the module that defines it:

    from .api.client import GrokClient
    from .api.config import load_settings
    with GrokClient(load_settings()) as client:
        task = client.wait(client.create_text_to_image("a red fox in snow"))
        blob = client.download(task.result_urls[0])
"""
