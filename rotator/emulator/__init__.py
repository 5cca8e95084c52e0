"""An emulator of Auth0, and of Apple's token endpoint, for ``rotator demo`` and tests.

It implements what rotator uses of each, with their behaviour (see
``PRODUCT.md``, "The emulator"), as a real HTTPS server on loopback with a
throwaway CA, injectable faults, a rate limit and a journal of requests.

The modules, from the socket inwards:

* :mod:`~rotator.emulator.loopback`: :class:`Emulator`, a backend served over TLS;
* :mod:`~rotator.emulator.server`: the TLS server and the thin HTTP handler;
* :mod:`~rotator.emulator.backend`: faults, journal and routing, in-process;
* :mod:`~rotator.emulator.auth0`: Auth0's state, tokens and rate limit, in-process;
* :mod:`~rotator.emulator.management`: Auth0's connections endpoints and error bodies;
* :mod:`~rotator.emulator.payload`: Auth0's validation of a PATCH body;
* :mod:`~rotator.emulator.apple`: Apple's rules for a client secret, in-process;
* :mod:`~rotator.emulator.assertion`: Auth0's rules for a Private Key JWT client assertion;
* :mod:`~rotator.emulator.faults`: :class:`Fault`, the fault queue, the rate limit;
* :mod:`~rotator.emulator.exchange`: requests, responses, the journal;
* :mod:`~rotator.emulator.admin`: admin endpoints to change Apple keys while running;
* :mod:`~rotator.emulator.sample`: the one realistic Apple connection everyone starts from;
* :mod:`~rotator.emulator.cli`: ``python -m rotator.emulator``.

Importing this package loads neither ``trustme`` nor any network library.
"""

from rotator.emulator.auth0 import DEFAULT_SCOPES
from rotator.emulator.exchange import Request
from rotator.emulator.faults import Fault
from rotator.emulator.loopback import Emulator

__all__ = ["DEFAULT_SCOPES", "Emulator", "Fault", "Request"]
