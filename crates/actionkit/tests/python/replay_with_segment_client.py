"""Replays a file of calls through Segment's official Python client, for serve_state.rs.

Each line of the input file is one call as JSON: {"type": "identify", "userId", "traits"},
{"type": "track", "userId", "event", "properties"} or {"type": "group", "userId", "groupId",
"traits"}. The client (`segment-analytics-python`, imported as `segment.analytics`) batches them
in its background thread as an app would; the write key comes from SEGMENT_WRITE_KEY.

Usage:
    SEGMENT_WRITE_KEY=... python3 replay_with_segment_client.py --host http://127.0.0.1:PORT CALLS

Standard output is one JSON object: `sent` (calls handed to the client) and `errors`. The exit
code is 0 when the client reported no error, 1 when it did, and 3 when the package is missing.
"""

import argparse
import json
import os
import sys

try:
    import segment.analytics as analytics
except ImportError as exc:
    print(f"segment-analytics-python is not installed: {exc}", file=sys.stderr)
    sys.exit(3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the intake's base URL")
    parser.add_argument("calls", help="the file of calls, one JSON object per line")
    args = parser.parse_args()

    write_key = os.environ.get("SEGMENT_WRITE_KEY")
    if not write_key:
        print("SEGMENT_WRITE_KEY is not set", file=sys.stderr)
        return 2

    errors = []

    def on_error(error, items):
        errors.append({"error": str(error), "events": len(items)})
        print(f"segment client error: {error}", file=sys.stderr)

    analytics.write_key = write_key
    analytics.host = args.host
    analytics.on_error = on_error
    analytics.max_retries = 2
    analytics.timeout = 10
    # A whole round of calls fits the client's queue, so none is dropped.
    analytics.max_queue_size = 100000

    sent = 0
    with open(args.calls, encoding="utf-8") as calls:
        for line in calls:
            call = json.loads(line)
            kind = call["type"]
            if kind == "identify":
                ok, _ = analytics.identify(call["userId"], call.get("traits") or {})
            elif kind == "track":
                ok, _ = analytics.track(call["userId"], call["event"], call.get("properties") or {})
            elif kind == "group":
                ok, _ = analytics.group(call["userId"], call["groupId"], call.get("traits") or {})
            else:
                print(f"unknown call type {kind!r}", file=sys.stderr)
                return 2
            if not ok:
                errors.append({"error": "the client's queue refused the message", "events": 1})
            sent += 1

    analytics.flush()
    analytics.shutdown()
    json.dump({"sent": sent, "errors": errors}, sys.stdout)
    sys.stdout.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
