"""OmniHuman-1.5 as a framework-free torch library.

System 2 (deliberate): `omnihuman_core.agents` and `omnihuman_core.schedule`.
System 1 (reactive): `model`, `vae`, `text`, `audio`, `sampling`, `pipeline`, `upscale`.
Importing this package is cheap: submodules are imported on use.
"""

__version__ = "0.1.0"
