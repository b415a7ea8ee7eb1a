"""Cloud Run function: every ledger read (accounts, postings, entries, trial balance, balances)."""

import functions_framework
from arus.web.functions import query_app


@functions_framework.http
def query(request):  # type: ignore[no-untyped-def]
    return query_app(request)
