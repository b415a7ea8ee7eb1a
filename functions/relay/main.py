"""Cloud Run function: drains the outbox to Pub/Sub (Cloud Scheduler calls it every minute)."""

import functions_framework
from arus.web.functions import relay_app


@functions_framework.http
def relay(request):  # type: ignore[no-untyped-def]
    return relay_app(request)
