"""An agent's connection states as Buildkite names them."""

from __future__ import annotations

from enum import StrEnum


class ConnectionState(StrEnum):
    NEVER_CONNECTED = "never_connected"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPING = "stopping"
    STOPPED = "stopped"
    LOST = "lost"


#: Connected, as far as the server knows: heartbeats are expected.
ALIVE = (ConnectionState.CONNECTED, ConnectionState.STOPPING)
#: Not connected: a ping from it is refused until it connects again.
UNCONNECTED = (ConnectionState.NEVER_CONNECTED, ConnectionState.DISCONNECTED, ConnectionState.LOST)
