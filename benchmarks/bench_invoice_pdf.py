"""Printable invoices: time for invoices of 100, 1,000, 5,000 and 10,000 lines, HTML and PDF
(``slem_ml.outputs.invoice_render``, ``slem_ml.outputs.invoice_pdf``).

Run from the repository root:
``.venv/bin/python benchmarks/bench_invoice_pdf.py [--lines N …] [--repeat R] [--limit L|none]``.
The lines are synthetic but shaped like the engine's: evening sessions in 40 zones over a month, times to
the millisecond, 2 % of them spike-adjusted. Prints a markdown table (best of R runs each): the view
(``invoice_view``, shared by both renderings), the HTML page and the PDF drawn from it, and view + PDF per
line. ``--limit`` is the printed-lines limit (default ``none``: every line printed, the worst case; with
``2000``, slem's default, a longer invoice prints as a summary). The one-off cost of importing fpdf2 in a
fresh process is printed first: ``slem score`` pays it once, not per invoice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slem_ml.config import SAMPLE_CONTRACTS  # noqa: E402
from slem_ml.config.site import SiteConfig, load_site  # noqa: E402
from slem_ml.io import schema  # noqa: E402

CONTRACTS = SAMPLE_CONTRACTS  # Europe/Berlin; C001 Mon–Fri 08:00–18:00
INVOICE = "INV-C001-202510"
CENT, MICRO = Decimal("0.01"), Decimal("0.000001")


def synthetic_invoice(lines: int, site: SiteConfig, seed: int = 7) -> tuple[dict[str, object], pd.DataFrame]:
    """One invoice row and its ``lines`` invoice lines (October 2025: the autumn DST change included)."""
    rng = np.random.default_rng(seed)
    tz = site.site.timezone
    day = rng.integers(1, 32, lines)
    zone = rng.integers(0, 40, lines)
    start_ms = rng.integers(18 * 3_600_000, 23 * 3_600_000, lines)
    length_ms = np.minimum(rng.integers(60_000, 4 * 3_600_000, lines), 24 * 3_600_000 - start_ms)
    midnight = pd.to_datetime([f"2025-10-{d:02d}" for d in day]).tz_localize(tz)
    start = midnight + pd.to_timedelta(start_ms, unit="ms")
    end = start + pd.to_timedelta(length_ms, unit="ms")
    billable = -(-length_ms // 900_000) * 15
    kwh = [Decimal(int(v)).scaleb(-6) for v in rng.integers(1_000, 900_000, lines)]
    hours_charge = [(Decimal(int(b)) * 15 / 60).quantize(CENT) for b in billable]
    energy_charge = [(k * Decimal("0.20")).quantize(CENT) for k in kwh]
    adjusted = rng.random(lines) < 0.02
    frame = pd.DataFrame(
        {
            "invoice_id": INVOICE,
            "client_id": "C001",
            "zone_id": [f"HQ-F{z // 8 + 1}-Z{z % 8 + 1}" for z in zone],
            "date": [dt.date(2025, 10, int(d)) for d in day],
            "start": pd.Series(start).dt.as_unit("ms"),
            "end": pd.Series(end).dt.as_unit("ms"),
            "minutes": [(Decimal(int(m)) / 60_000).quantize(Decimal("0.001")) for m in length_ms],
            "billable_minutes": billable,
            "energy_kwh": kwh,
            "hours_charge": hours_charge,
            "energy_charge": energy_charge,
            "amount": [h + e for h, e in zip(hours_charge, energy_charge, strict=True)],
            "currency": "EUR",
            "adjusted": adjusted,
            "original_energy_kwh": [
                (k * 4).quantize(MICRO) if a else k for k, a in zip(kwh, adjusted, strict=True)
            ],
            "status": "billed",
        }
    )[list(schema.INVOICE_LINE_COLUMNS)]
    frame = frame.sort_values(["date", "zone_id", "start"], kind="stable", ignore_index=True)
    row = {
        "invoice_id": INVOICE,
        "client_id": "C001",
        "period": "2025-10",
        "revision": 1,
        "lines": lines,
        "billable_hours": (Decimal(int(billable.sum())) / 60).quantize(CENT),
        "energy_kwh": sum(kwh, Decimal("0")),
        "total": sum(frame["amount"], Decimal("0")),
        "currency": "EUR",
        "content_hash": hashlib.sha256(f"{lines}:{seed}".encode()).hexdigest(),
    }
    return row, frame


def best(repeat: int, call: object) -> tuple[float, object]:
    """The fastest of ``repeat`` runs [s], and the last result."""
    assert callable(call)
    fastest, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = call()
        fastest = min(fastest, time.perf_counter() - t0)
    return fastest, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[100, 1_000, 5_000, 10_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best one counts")
    parser.add_argument("--limit", default="none", help="printed lines above which a summary prints")
    args = parser.parse_args()
    limit = None if args.limit == "none" else int(args.limit)

    t0 = time.perf_counter()
    import fpdf  # noqa: F401  # the one-off cost, before the invoice modules import it

    import_s = time.perf_counter() - t0
    from slem_ml.outputs.invoice_pdf import render_view_pdf
    from slem_ml.outputs.invoice_render import _write_html, invoice_view

    site = load_site(CONTRACTS)
    issued = dt.date(2025, 11, 3)
    page = Path(tempfile.mkdtemp(prefix="bench-invoice-")) / "invoice.html"
    print(f"<!-- importing fpdf2: {import_s * 1000:.0f} ms, once per process; limit {args.limit} -->")
    print(
        "| lines | pages | view [ms] | HTML [ms] | PDF [ms] | view + PDF [ms] | per line [ms] | HTML [kB] "
        "| PDF [kB] |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for count in args.lines:
        row, frame = synthetic_invoice(count, site)
        view_s, view = best(
            args.repeat,
            lambda row=row, frame=frame: invoice_view(row, frame, site, issued=issued, limit=limit),
        )
        html_s, _ = best(args.repeat, lambda view=view: _write_html(view, page))  # as slem score writes it
        pdf_s, pdf = best(args.repeat, lambda view=view: render_view_pdf(view))
        assert isinstance(pdf, bytes)
        pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
        total = view_s + pdf_s
        print(
            f"| {count:,} | {pages} | {view_s * 1000:.1f} | {html_s * 1000:.1f} | {pdf_s * 1000:.1f} "
            f"| {total * 1000:.1f} | {total * 1000 / count:.3f} | {page.stat().st_size / 1000:.0f} "
            f"| {len(pdf) / 1000:.0f} |"
        )
    shutil.rmtree(page.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
