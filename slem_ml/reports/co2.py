"""The grid emission factor a report's CO₂ figures use (SPEC §10): the site's own ``co2_kg_per_kwh`` when
its contracts give one, else a shipped factor for the site's holiday country, else an EU average — each with
its source and year, which the report prints beside the figures.

The shipped factors are annual averages of electricity generated (or consumed) in each country, as the
cited body publishes them [kg CO₂(e) / kWh]. They change every year; a site that needs its supplier's own
factor sets ``site.co2_kg_per_kwh``. Only factors checked against their publisher are shipped; a site in
another country gets the EU average, and the report says so beside its CO₂ figures.
"""

from __future__ import annotations

from slem_ml.config.site import SiteConfig
from slem_ml.outputs.report_content import Co2Factor

__all__ = ["COUNTRY_FACTORS", "EU_AVERAGE", "co2_factor"]

#: Country (ISO 3166 alpha-2) → its grid factor, source and year. The source names the publication without
#: its year: the report prints the year after it ("…, 2023").
COUNTRY_FACTORS: dict[str, Co2Factor] = {
    "DE": Co2Factor(0.380, "Umweltbundesamt, CO₂-Emissionsfaktor des deutschen Strommix", 2023),
    "FR": Co2Factor(0.032, "RTE, Bilan électrique (emissions of French generation)", 2023),
    "GB": Co2Factor(0.20705, "UK Government GHG Conversion Factors for Company Reporting (DESNZ)", 2024),
    "US": Co2Factor(0.3733, "US EPA eGRID, US average output emission rate (823.1 lb CO₂/MWh)", 2022),
}

#: When the site names no country the table knows.
EU_AVERAGE = Co2Factor(
    0.251, "EU-27 average, no country factor (EEA, GHG emission intensity of electricity generation)", 2022
)


def co2_factor(site: SiteConfig) -> Co2Factor:
    """The factor for ``site``: its own ``co2_kg_per_kwh``, else its holiday country's, else the EU
    average."""
    own = site.site.co2_kg_per_kwh
    if own is not None:
        return Co2Factor(float(own), "site configuration (co2_kg_per_kwh)", None)
    country = (site.site.holiday_country or "").upper()
    return COUNTRY_FACTORS.get(country, EU_AVERAGE)
