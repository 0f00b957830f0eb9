"""Money and waste from validated readings (SPEC §3, §4): pure functions, no I/O.

* :mod:`~slem_ml.billing.coverage` — what each reading covers and its usage class (contract, overtime, …);
* :mod:`~slem_ml.billing.sessions` — runs of lit readings as sessions;
* :mod:`~slem_ml.billing.invoices` — invoice lines per overtime session and invoices per client and month;
* :mod:`~slem_ml.billing.cleaning` — cleaning sessions and the waste of those over the limit.
"""
