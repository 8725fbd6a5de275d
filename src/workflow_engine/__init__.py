"""A durable state-machine workflow engine for data enrichment, served over REST."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> object:
    # Importing the package must stay cheap and side-effect free: Flask is loaded only
    # when the application is asked for.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
