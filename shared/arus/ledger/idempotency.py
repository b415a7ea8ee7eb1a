"""Request fingerprints: a replay must carry the same request as the original to be a replay."""

from __future__ import annotations

import hashlib
import json


def fingerprint(*, operation: str, body: object) -> str:
    """sha256 over the operation (route with its ids) and the canonical JSON of the body.

    Canonical means sorted keys and no insignificant white space, so re-serialising the same
    request in another client (key order, spacing) still counts as the same request.
    """
    canonical = json.dumps(
        {"operation": operation, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
