"""Importers of the CSV files operators load: the portfolio and reported payments.

``csv_rows`` reads and checks a file, ``portfolio`` and ``payments`` validate
and load its rows, ``report`` says what happened, ``commands`` is the CLI.
"""
