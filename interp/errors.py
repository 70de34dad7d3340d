"""The errors interp's loaders raise; a module of their own so every layer can raise them without cycles."""


class LoadError(ValueError):
    """The source could not be turned into a model; the message says what was wrong and what is allowed."""


class ParityError(RuntimeError):
    """interp's logits differ from the Hugging Face reference by more than the tolerance."""


class SaveError(OSError):
    """`save` could not write the folder; the message names the path and says what was left there."""
