"""gradtone_hook: hear your PyTorch training with gradtone.

Three lines in a training loop::

    from gradtone_hook import GradTone
    tone = GradTone(model)      # every trainable parameter, one voice per module
    ...
    loss.backward()
    tone.step(loss=loss)        # after backward, before clip_grad_norm_ and optimizer.step()
    optimizer.step()

and ``python train.py | gradtone listen``. PyTorch Lightning and Hugging Face ``Trainer`` users
add a callback instead: :class:`gradtone_hook.lightning.GradToneCallback`,
:class:`gradtone_hook.hf.GradToneCallback`. The stream format is docs/stream-format.md (JSON
Lines, version 1). :class:`StreamWriter`, :func:`encode_line` and the :mod:`gradtone_hook.osc`
encoder need no torch; :class:`GradTone` imports torch when it is created.
"""

from ._format import FORMAT_VERSION, encode_line, frame_dict, json_number
from ._writer import StreamWriter

try:  # the wheel's version, which is the gradtone executable's (one number for both)
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("gradtone")
except PackageNotFoundError:  # used from a checkout, not installed
    __version__ = "0.0.0+source"

__all__ = ["GradTone", "StreamWriter", "encode_line", "frame_dict", "json_number", "FORMAT_VERSION", "__version__"]


def __getattr__(name):
    # Lazy so that `import gradtone_hook` never imports torch (seconds, and it may be absent).
    if name == "GradTone":
        from ._hook import GradTone

        return GradTone
    raise AttributeError(f"module 'gradtone_hook' has no attribute {name!r}")
