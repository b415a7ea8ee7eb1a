"""Cloud Run function: the daily close of every ledger (Cloud Scheduler calls it at 00:15 UTC)."""

import functions_framework
from arus.web.functions import daily_close_app


@functions_framework.http
def daily_close(request):  # type: ignore[no-untyped-def]
    return daily_close_app(request)
