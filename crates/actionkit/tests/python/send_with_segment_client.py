"""Sends one of each Segment call through the official Python client, for serve_python.rs.

The client is `segment-analytics-python` (imported as `segment.analytics`), configured the way its
documentation shows: module-level `write_key`, `host`, `on_error`, and optionally `gzip` and
`sync_mode`. The write key comes from the environment variable SEGMENT_WRITE_KEY, so that it never
appears in a process listing.

Usage:
    SEGMENT_WRITE_KEY=... python3 send_with_segment_client.py --host http://127.0.0.1:PORT \
        --tag TAG [--sync] [--gzip]

Standard output is one JSON object: the library's name and version, and `messages`, every message
exactly as the client queued it (the client returns it from each call, with its `messageId`,
`timestamp` and `context.library` filled in). The exit code is 0 when the client reported no
error, 1 when it did (each error is printed to standard error and listed under `errors`), and 3
when the package is not installed.
"""

import argparse
import json
import os
import sys
from datetime import datetime, timezone

try:
    import segment.analytics as analytics
    from segment.analytics.version import VERSION
except ImportError as exc:
    print(f"segment-analytics-python is not installed: {exc}", file=sys.stderr)
    sys.exit(3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the intake's base URL")
    parser.add_argument("--tag", required=True, help="makes the ids of this run unique")
    parser.add_argument("--sync", action="store_true", help="one request per call (sync_mode)")
    parser.add_argument("--gzip", action="store_true", help="gzip the request bodies")
    args = parser.parse_args()

    write_key = os.environ.get("SEGMENT_WRITE_KEY")
    if not write_key:
        print("SEGMENT_WRITE_KEY is not set", file=sys.stderr)
        return 2

    errors = []

    def on_error(error, items):
        # The consumer thread calls this when a batch is finally refused or cannot be sent.
        errors.append({"error": str(error), "events": len(items)})
        print(f"segment client error: {error}", file=sys.stderr)

    analytics.write_key = write_key
    analytics.host = args.host
    analytics.on_error = on_error
    analytics.gzip = args.gzip
    analytics.sync_mode = args.sync
    # A failure should end the test quickly rather than back off for minutes.
    analytics.max_retries = 2
    analytics.timeout = 10

    tag = args.tag
    user = f"py-{tag}-user"
    company = f"py-{tag}-company"
    context = {
        "ip": "203.0.113.7",
        "locale": "de-DE",
        "traits": {"email": f"{user}@example.com"},
    }
    calls = [
        lambda: analytics.identify(
            user,
            {
                "name": "Zoë Ångström",
                "email": f"{user}@example.com",
                "plan": "growth",
                "logins": 7,
                "createdAt": "2021-03-04T05:06:07Z",
                "address": {"city": "Köln", "country": "DE"},
            },
            context=context,
        ),
        lambda: analytics.track(
            user,
            "Order Completed",
            {
                "revenue": 42.5,
                "currency": "EUR",
                "products": [{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 1}],
                "coupon": None,
                "gift": False,
            },
            context=context,
            # A historical event: the client sends this time as `timestamp`.
            timestamp=datetime(2024, 5, 1, 12, 30, 0, tzinfo=timezone.utc),
        ),
        lambda: analytics.group(
            user,
            company,
            {"name": "Acme GmbH", "plan": "enterprise", "employees": 250, "createdAt": "2019-01-01"},
            context=context,
        ),
        lambda: analytics.page(
            user, "Docs", "Getting Started", {"path": "/docs/start", "title": "Start"}, context=context
        ),
        lambda: analytics.screen(user, "Settings", "Profile", {"tab": "privacy"}, context=context),
        lambda: analytics.alias(f"py-{tag}-anon", user, context=context),
    ]

    messages = []
    for call in calls:
        try:
            ok, message = call()
        except Exception as exc:  # In sync mode a refused request raises here.
            errors.append({"error": str(exc), "events": 1})
            print(f"segment client error: {exc}", file=sys.stderr)
            continue
        if not ok:
            errors.append({"error": "the client's queue refused the message", "events": 1})
        messages.append(message)

    if not args.sync:
        # Send what is queued, then stop the consumer thread (sync mode has none to stop).
        analytics.flush()
        analytics.shutdown()

    json.dump(
        {
            "library": {"name": "analytics-python", "version": VERSION},
            "mode": "sync" if args.sync else "batch",
            "gzip": args.gzip,
            "messages": messages,
            "errors": errors,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
