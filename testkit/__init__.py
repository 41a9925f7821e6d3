"""What the tests and the benchmarks share: real processes, accounts, the bundled data, private services.

Not part of the product (not installed): `support` for processes, accounts and spreadsheets, `reliability` for a
scenario's own database, broker and workers, a crowd of jobs and the exactly-once checks.
"""
