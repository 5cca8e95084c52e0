"""The floor under `rotator mint`: a bare PyJWT script, what a team hand-writes today.

Reads the settings rotator reads (APPLE_PRIVATE_KEY_FILE, APPLE_TEAM_ID,
APPLE_KEY_ID, APPLE_CLIENT_ID), signs the client secret with PyJWT (ES256,
180 days) and prints it. No checks, no messages: the least any Python program
that signs this secret with our libraries can do. bench/startup.py times it.
"""

import os
import time

import jwt

now = int(time.time())
with open(os.environ["APPLE_PRIVATE_KEY_FILE"], "rb") as key:
    print(jwt.encode(
        {"iss": os.environ["APPLE_TEAM_ID"], "iat": now, "exp": now + 180 * 86400,
         "aud": "https://appleid.apple.com", "sub": os.environ["APPLE_CLIENT_ID"]},
        key.read(), algorithm="ES256", headers={"kid": os.environ["APPLE_KEY_ID"]},
    ))
