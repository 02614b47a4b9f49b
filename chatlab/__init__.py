"""chatlab: learn Socket.IO in Jupyter.

Run a python-socketio server inside the notebook's own event loop
(:func:`serve`), the finished chat server (:class:`ChatServer`), Python chat
clients with awaitable waits (:class:`ChatClient`) and their widgets
(:mod:`chatlab.widgets`).
"""

from .admin_ui import AdminUI
from .app_process import AppFailed, AppProcess, start_app, stop_all_apps
from .chat_server import ChatServer
from .client import ChatClient, ChatRefused, Message, disconnect_all
from .connections import ConnectionLimits
from .events import EventLog, LogEntry
from .fast import FastPaths
from .recording import RecordingClient, shutdown_all as _shutdown_recording_clients
from .source import show_source
from .host import HandlerError, PortInUseError, RunningServer, running_servers, serve, stop_all
from .validation import Limits
from .waiting import WaitTimeout
from .wire import WireTap
from .wire.tap import stop_all_taps as _stop_all_taps

__all__ = [
    "AdminUI",
    "AppFailed",
    "AppProcess",
    "ChatClient",
    "ChatRefused",
    "ChatServer",
    "ConnectionLimits",
    "EventLog",
    "FastPaths",
    "HandlerError",
    "Limits",
    "LogEntry",
    "Message",
    "PortInUseError",
    "RecordingClient",
    "RunningServer",
    "WaitTimeout",
    "WireTap",
    "disconnect_all",
    "running_servers",
    "serve",
    "show_source",
    "shutdown",
    "start_app",
    "stop_all",
]

__version__ = "0.1.0"


async def shutdown() -> None:
    """Disconnect every client (ChatClient and RecordingClient), stop every
    server started on this event loop, every wire tap (:mod:`chatlab.wire`)
    and every app process started with :func:`start_app`: the last cell of
    each lesson."""
    await disconnect_all()
    await _shutdown_recording_clients()
    await stop_all()
    await _stop_all_taps()
    await stop_all_apps()
