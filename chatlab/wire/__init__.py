"""The wire view: what Socket.IO really sends, recorded and decoded.

:func:`tap` starts a :class:`WireTap`, a recording proxy that a client
connects through; :mod:`chatlab.wire.decode` says what each packet means;
:class:`~chatlab.wire.widget.WireLogWidget` shows it live in a notebook.
"""

from .decode import Decoded, decode_packet, decode_payload, split_payload
from .tap import Record, WireTap, running_taps, stop_all_taps, tap

__all__ = [
    "Decoded",
    "Record",
    "WireLogWidget",
    "WireTap",
    "decode_packet",
    "decode_payload",
    "running_taps",
    "split_payload",
    "stop_all_taps",
    "tap",
]


def __getattr__(name: str) -> object:
    # The widget needs ipywidgets; the tap and decoder do not.
    if name == "WireLogWidget":
        from .widget import WireLogWidget
        return WireLogWidget
    raise AttributeError(name)
