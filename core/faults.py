"""A testing aid: stop the process dead at a named point of a turn, to prove that crashes lose nothing.

`THREADLINE_FAULT_POINT` names the point; the process sends itself SIGKILL there, as a power cut or an OOM kill
would. Unset (always, outside crash tests), `reached` does nothing. It is not a setting to configure.
"""

from __future__ import annotations

import os
import signal
from typing import Literal

FAULT_POINT_ENV = "THREADLINE_FAULT_POINT"
FaultPoint = Literal["after_accept", "during_tool", "after_order_write", "before_reply"]
FAULT_POINTS: tuple[FaultPoint, ...] = ("after_accept", "during_tool", "after_order_write", "before_reply")
"""after the message is logged; inside a tool call, before its result exists; after a confirmed order action is
written, before the turn's reply exists; after the reply is logged, before it is sent back."""


def reached(point: FaultPoint) -> None:
    """Die here when the crash test asked for this point; otherwise do nothing."""
    if os.environ.get(FAULT_POINT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
