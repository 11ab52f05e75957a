"""osptrack: run open-source packages once in a sandbox and record what they do."""

__version__ = "0.1.0"
