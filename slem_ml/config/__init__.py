"""The site's configuration (SPEC §2, ``contracts.yaml``): timezone, clients and their contracts, billing and
cleaning settings. Loaded once by an entry point and passed down, frozen; every key checked.

Below every other room: the reader needs the site's timezone and clients, billing its contracts.
"""

from pathlib import Path

from slem_ml.config.site import (
    BillingConfig,
    CleaningConfig,
    ClientContract,
    DayWindow,
    SamplingConfig,
    SiteConfig,
    SiteInfo,
    load_site,
    parse_site,
)

#: The sample site configuration shipped with slem (the clients of the legacy export).
SAMPLE_CONTRACTS = Path(__file__).resolve().parent.parent / "data" / "contracts.yaml"

__all__ = [
    "SAMPLE_CONTRACTS",
    "BillingConfig",
    "CleaningConfig",
    "ClientContract",
    "DayWindow",
    "SamplingConfig",
    "SiteConfig",
    "SiteInfo",
    "load_site",
    "parse_site",
]
