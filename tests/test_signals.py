"""Tests for rotator.signals: SIGTERM and SIGINT as a request to stop, for runs and the service."""

from __future__ import annotations

import os
import signal

import pytest

from rotator import signals


def _send_and_wait(sig: signal.Signals) -> None:
    """Send ``sig`` to this process and give its handler time to run."""
    os.kill(os.getpid(), sig)
    signal.sigtimedwait([], 0.5)  # an interruptible pause; the handler runs during it


def test_a_signal_sets_stop_and_is_recorded() -> None:
    """SIGTERM, then SIGTERM again: the stop event is set, both are recorded, nothing dies."""
    with signals.caught() as caught:
        assert not caught.stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert caught.stop.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.received == ["SIGTERM", "SIGTERM"]
    assert caught.first == "SIGTERM"


def test_a_second_sigint_insists() -> None:
    """The first SIGINT asks to stop; the second raises KeyboardInterrupt at once."""
    with signals.caught() as caught:
        os.kill(os.getpid(), signal.SIGINT)
        assert caught.stop.wait(5)
        with pytest.raises(KeyboardInterrupt):
            _send_and_wait(signal.SIGINT)
    assert caught.received == ["SIGINT", "SIGINT"]


def test_the_previous_handlers_come_back() -> None:
    """After the block, SIGTERM and SIGINT are handled as they were before it."""
    before = {sig: signal.getsignal(sig) for sig in signals.STOP_SIGNALS}
    with signals.caught():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in signals.STOP_SIGNALS} == before
