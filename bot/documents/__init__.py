"""Documents of record the system issues (the carta finiquito), rendered from the ledger.

Above the domain: the domain decides that a letter exists and what it says
(:mod:`bot.domain.settlement_letters`); this package knows the public URLs and the PDF.
"""
