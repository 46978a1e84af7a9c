"""One run of tweepy's StreamingClient against the stream-reader benchmark's loopback server.

Run by dev/bench/reader-peers.ts (in the venv made by dev/tools/install-bench-python.sh):

    python dev/bench/tweepy_reader.py --base-url http://127.0.0.1:PORT --expected FILE

tweepy hard-codes https://api.twitter.com in StreamingClient._connect; the subclass below builds
the same URL on --base-url instead and leaves everything else to tweepy: its requests session,
`iter_lines(chunk_size=512)`, `on_data` (json.loads, Tweet and includes objects), `on_response`.
It reads one connection: the server ends the body, tweepy calls `on_closed`, and the run stops
there instead of reconnecting.

--expected is NDJSON, one {"id", "text"} per post the server sends (text = note_tweet.text when
present, else text). Prints one JSON object on stdout: posts received, distinct, lost, corrupt
(text differs from the source), seconds (from the request to the end of the body; interpreter
start-up and imports are not timed), and the exception that ended the stream, if any.
"""

import argparse
import json
import sys
import time

import tweepy
from tweepy.streaming import BaseStream


class BenchStreamingClient(tweepy.StreamingClient):
    def __init__(self, base_url, **kwargs):
        super().__init__("bench-token", **kwargs)
        self.base_url = base_url.rstrip("/")
        self.received = []  # (id, full text) per post, checked after the run
        self.connects = 0
        self.ended_at = None
        self.error = None

    def _connect(self, method, endpoint, **kwargs):
        self.session.headers["Authorization"] = f"Bearer {self.bearer_token}"
        url = f"{self.base_url}/2/tweets/{endpoint}/stream"
        BaseStream._connect(self, method, url, **kwargs)

    def on_connect(self):
        self.connects += 1
        if self.connects > 1:  # one connection per run: never read the body twice
            self._end()

    def on_response(self, response):
        tweet = response.data
        if tweet is None:
            return
        note = tweet.data.get("note_tweet")
        text = note["text"] if isinstance(note, dict) and "text" in note else tweet.text
        self.received.append((str(tweet.id), text))

    def on_closed(self, response):
        self._end()

    def on_connection_error(self):
        self._end()

    def on_request_error(self, status_code):
        self.error = f"HTTP {status_code}"
        self._end()

    def on_exception(self, exception):
        self.error = f"{type(exception).__name__}: {exception}"
        self._end()

    def _end(self):
        if self.ended_at is None:
            self.ended_at = time.perf_counter()
        self.disconnect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--expected", required=True)
    args = ap.parse_args()

    expected = {}
    with open(args.expected, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                expected[o["id"]] = o["text"]

    client = BenchStreamingClient(args.base_url, max_retries=0)
    started = time.perf_counter()
    client.filter()
    ended = client.ended_at or time.perf_counter()

    seen = {}
    for post_id, text in client.received:
        seen.setdefault(post_id, text)
    corrupt = sum(1 for post_id, text in seen.items() if expected.get(post_id, text) != text)
    json.dump(
        {
            "reader": f"tweepy {tweepy.__version__} StreamingClient",
            "received": len(client.received),
            "distinct": len(seen),
            "lost": sum(1 for post_id in expected if post_id not in seen),
            "corrupt": corrupt,
            "seconds": ended - started,
            "error": client.error,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
