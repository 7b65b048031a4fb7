"""Errors the library raises for bad input.

Every message names what was wrong and how to fix it, and is raised before expensive work starts.
"""


class OmniHumanError(Exception):
    """Base class of every error this library raises on purpose."""


class InputError(OmniHumanError, ValueError):
    """A user-supplied input (file, option, schedule) cannot be used as given; the message says why."""


class WeightsError(OmniHumanError, ValueError):
    """A weights file is missing, not safetensors, corrupt, or does not match the expected model."""


class Cancelled(OmniHumanError):
    """The host (CLI Ctrl-C, ComfyUI Cancel) asked to stop; finished work has been kept."""
