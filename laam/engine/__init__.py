"""The one decoding engine: KV cache, sliding windows (laam.windows), batching, draft verification, lockstep."""

from laam.engine.generator import WindowedGenerator
from laam.engine.request import GenerationStats, Request
from laam.engine.sampling import Sampling

__all__ = ["GenerationStats", "Request", "Sampling", "WindowedGenerator"]
