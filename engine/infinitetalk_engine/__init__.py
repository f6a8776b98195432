"""InfiniteTalk engine worker: preview and infinitetalk engines behind the JSON-lines protocol."""

__version__ = "0.1.0"
