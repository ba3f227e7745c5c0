"""What makes two requests "the same": the key the journal finds earlier paid work by.

The API has no seed and no idempotency key, so the pack defines one. Queueing a node again with
the same inputs must find the task it already paid for; changing any input (the seed included: it
is the user's deliberate "make me a new one" switch) must not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.models import CREDITS_PER_TASK, TEXT_TO_IMAGE_MODEL, UPSCALE_MODEL


@dataclass(frozen=True)
class RequestIdentity:
    """The inputs of one paid request; ``key`` is the sha256 of their canonical JSON.

    ``index`` is the request's position in a multi-task batch, so eight parallel tasks of one
    node are eight identities, each resumable on its own. ``api_base`` is the API's base URL: a
    sandbox task must never stand in for a paid one with the same inputs (or the reverse).
    """

    model: str
    prompt: str | None = None
    aspect_ratio: str | None = None
    seed: int = 0
    index: int = 0
    source_task_id: str | None = None
    api_base: str = ""

    @classmethod
    def text_to_image(
        cls,
        prompt: str,
        aspect_ratio: str | None = None,
        seed: int = 0,
        index: int = 0,
        api_base: str = "",
    ) -> RequestIdentity:
        return cls(
            TEXT_TO_IMAGE_MODEL, prompt, aspect_ratio or None, int(seed), int(index), None, api_base
        )

    @classmethod
    def upscale(
        cls, source_task_id: str, seed: int = 0, index: int = 0, api_base: str = ""
    ) -> RequestIdentity:
        return cls(UPSCALE_MODEL, None, None, int(seed), int(index), source_task_id, api_base)

    @property
    def key(self) -> str:
        # Imported here: the nodes read this module's prices while ComfyUI starts up.
        import hashlib
        import json

        canonical = json.dumps(
            {
                "model": self.model,
                "prompt": self.prompt,
                "aspect_ratio": self.aspect_ratio,
                "seed": self.seed,
                "index": self.index,
                "source_task_id": self.source_task_id,
                "api_base": self.api_base,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def credits(self) -> int:
        """What one create of this request costs (0 for a model we do not know the price of)."""
        return CREDITS_PER_TASK.get(self.model, 0)
