"""Threadline: omnichannel AI customer support for retailers, on LangGraph.

Every package installs under this one namespace (`threadline.core`, `threadline.graphs`, ...). In the source tree
the packages stay in their folders at the repository root, and each entry here is a link to its folder; a built
wheel holds the packages themselves under `threadline/`.
"""

__version__ = "0.1.0"
