"""An HTTP protocol whose request timeout is a deadline, not an idle timer.

Sanic restarts its timeout clock on every byte it receives, so a client that sends its
headers one byte a second never meets ``REQUEST_TIMEOUT`` and holds its connection
forever (slowloris). Here the clock runs from the first byte of a request: the headers
must arrive within ``REQUEST_TIMEOUT``, and the body plus the handler within
``RESPONSE_TIMEOUT``, however the bytes trickle in.
"""

from __future__ import annotations

from sanic.http.constants import Stage
from sanic.server.protocols.http_protocol import HttpProtocol


class DeadlineHttpProtocol(HttpProtocol):
    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)  # set once the connection task runs
        started = self._time
        super().data_received(data)
        if http is not None and http.stage in (Stage.REQUEST, Stage.HANDLER):
            self._time = started
