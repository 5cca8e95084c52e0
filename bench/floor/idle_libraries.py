"""The floor under `rotator start`: an idle process holding only our own libraries.

Imports auth0-python's Management API client and APScheduler, starts a
background scheduler with one hourly job (as `rotator start` does) and sleeps.
No rotator code: whatever rotator start holds above this, rotator itself added.
bench/service.py measures it beside rotator start.
"""

import time

from apscheduler.schedulers.background import BackgroundScheduler
from auth0.management import ManagementClient

client = ManagementClient(domain="tenant.example.com", token="unused")  # noqa: S106 - never sent
scheduler = BackgroundScheduler()
scheduler.add_job(lambda: None, "interval", hours=1)
scheduler.start()
time.sleep(3600)
