"""text2sign: text-to-sign-language video diffusion."""

__version__ = "0.1.0"
