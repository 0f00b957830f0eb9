"""Reading input (SPEC §1): the one column contract, CSV and Parquet sources, validation into
:class:`~slem_ml.io.readings.Readings` with a quarantine and a report, and site wall time ↔ UTC.

* :mod:`~slem_ml.io.schema` — canonical column names, units and output column orders;
* :mod:`~slem_ml.io.sources` — bytes to raw frames: dialect sniffing, headers, Parquet detection;
* :mod:`~slem_ml.io.reader` — :func:`~slem_ml.io.reader.read_readings`, the only way to validated readings;
* :mod:`~slem_ml.io.readings` — what the reader returns, and :class:`~slem_ml.io.readings.Note`;
* :mod:`~slem_ml.io.localtime` — DST-correct local time, vectorised.

Nothing past this room sees a legacy header or a naive timestamp.
"""
