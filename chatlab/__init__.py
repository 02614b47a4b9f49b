"""chatlab: learn Socket.IO in Jupyter.

Run a python-socketio server inside the notebook's own event loop
(:func:`serve`), the finished chat server (:class:`ChatServer`), Python chat
clients with awaitable waits (:class:`ChatClient`) and their widgets
(:mod:`chatlab.widgets`).
"""

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

__all__ = [
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
    server started on this event loop and every app process started with
    :func:`start_app`: the last cell of each lesson."""
    await disconnect_all()
    await _shutdown_recording_clients()
    await stop_all()
    await stop_all_apps()
