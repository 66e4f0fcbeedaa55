class ImageFormatError(ValueError):
    """An image file cannot be used: unreadable, not 3D, non-finite, or on the wrong grid.

    The message always names the file and says what to do about it.
    """
