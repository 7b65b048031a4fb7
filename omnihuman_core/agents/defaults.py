"""The grid System 2 plans on by default: the same as `pipeline.RenderSettings`, so a plan fits a
default render. Kept in a module without imports so the CLI's `--help` stays instant."""

DEFAULT_FPS = 24.0
DEFAULT_SEGMENT_FRAMES = 121
DEFAULT_MOTION_FRAMES = 5
