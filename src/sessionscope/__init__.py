"""sessionscope: a terminal console for operators of AI-agent platforms."""

__version__ = "0.1.0"
