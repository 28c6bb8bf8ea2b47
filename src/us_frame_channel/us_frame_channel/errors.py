"""Errors of the frame channel. Every message says what is wrong and what to change."""


class ChannelError(RuntimeError):
    """Base class of all frame-channel errors."""


class ChannelConfigError(ChannelError, ValueError):
    """A channel configuration value is invalid."""


class ChannelNotFoundError(ChannelError):
    """No producer has created the channel (within the wait time)."""


class ChannelFullError(ChannelError):
    """The channel already has as many consumers (or producers) as it was created for."""


class LayoutVersionError(ChannelError):
    """The channel or a frame speaks a different layout version than this library."""


class IncompatibleChannelError(ChannelError):
    """The channel exists with settings that do not fit this producer or consumer."""


class FrameTooLargeError(ChannelError, ValueError):
    """A frame does not fit the channel's slot size."""


class BorrowLimitError(ChannelError):
    """A consumer holds more frames than the channel lets it borrow."""
