"""The client for scripts: `cytoscore submit | status | results`, over the public HTTP API only (httpx).

It imports nothing of the server (`make lint` checks): what it can do, any program with a token can do.
"""
