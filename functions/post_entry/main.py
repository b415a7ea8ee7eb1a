"""Cloud Run function: every ledger mutation (accounts, entries, reversals)."""

import functions_framework
from arus.web.functions import post_entry_app


@functions_framework.http
def post_entry(request):  # type: ignore[no-untyped-def]
    return post_entry_app(request)
