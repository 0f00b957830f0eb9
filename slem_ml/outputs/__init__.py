"""The files people read (SPEC §7): the output folder, its cell formats, ``summary.json``, the printable
invoices, the forecast files and the validation report as text.

:mod:`~slem_ml.outputs.writer` writes a :class:`~slem_ml.scoring.result.ScoringResult` all or nothing;
:mod:`~slem_ml.outputs.formatting` is how every value is spelt in them.
"""
