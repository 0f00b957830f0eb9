"""Synthetic readings with labels: :mod:`~slem_ml.generator.generate` is the public module; the others are its
steps.

One module per step of :func:`slem_ml.generator.generate.generate`, in the order it runs them:

* ``_calendar`` — the period's local days (DST, holidays) and each client's contracted hours on them;
* ``_layout`` — buildings → floors → zones, their clients, rated power and the cleaning crews' walks;
* ``_events`` — :class:`~slem_ml.generator._events.Events`, the intervals every step works on, and the
  kind and cause codes of the labels;
* ``_occupancy`` — tenants (contracted hours, overtime, closed-day work) and cleaning crews;
* ``_grid`` — the reading times (periodic or legacy) and how intervals map onto them;
* ``_faults`` — drift, stuck-on and dropout faults, and spikes (SPEC §5);
* ``_paint`` — the power of every reading from the intervals that cover it.
"""
