"""scaling: train one GPT-style model and record everything a scaling law needs about it."""

__version__ = "0.1.0"
