"""What a report is about (SPEC §10): the whole site, one building, or one client's readings.

``site``, ``building:HQ`` or ``client:C001``. A client's scope is the readings billed to that client (a
zone let to two clients over the period counts only this client's readings), as a client-scoped user of the
app sees them; a building's is every reading of its zones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.io import schema as S

__all__ = ["Scope", "ScopeKind", "client_label", "parse_scope"]

ScopeKind = Literal["site", "building", "client"]
_FORMS = "use site, building:<name> (e.g. building:HQ) or client:<id> (e.g. client:C001)"


@dataclass(frozen=True)
class Scope:
    """The part of the site a report covers."""

    text: str  # canonical: "site", "building:HQ", "client:C001"
    kind: ScopeKind
    value: str  # the building's name or the client's id; "" for the site
    label: str  # in words: "Whole site", "Building HQ", "Acme Logistics GmbH (C001)"

    @property
    def slug(self) -> str:
        """For file names: ``site``, ``building-HQ``, ``client-C001`` (only letters, digits, ``-`` and
        ``_``)."""
        if self.kind == "site":
            return "site"
        return f"{self.kind}-{re.sub(r'[^A-Za-z0-9_-]+', '_', self.value)}"

    def reading_mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which readings of ``frame`` (stored-readings columns, categorical) belong to the scope; decided
        per category, not per reading."""
        if self.kind == "site":
            return np.ones(len(frame), dtype=bool)
        column = frame[S.BUILDING if self.kind == "building" else S.CLIENT_ID]
        if isinstance(column.dtype, pd.CategoricalDtype):
            hit = column.cat.categories.astype(str) == self.value
            codes = column.cat.codes.to_numpy()
            return np.asarray(hit, dtype=bool)[codes] & (codes >= 0)
        return (column.astype(str) == self.value).to_numpy(dtype=bool)


def parse_scope(text: str, site: SiteConfig) -> Scope:
    """``site``, ``building:<name>`` or ``client:<id>`` → :class:`Scope`.

    Raises
    ------
    InputError
        For any other text, an empty name, or a client the site's contracts do not know.
    """
    value = (text or "").strip()
    if value.lower() == "site":
        return Scope("site", "site", "", "Whole site")
    kind, sep, name = value.partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if not sep or not name or kind not in ("building", "client"):
        raise InputError(f"scope {text!r} not understood: {_FORMS}")
    if kind == "building":
        return Scope(f"building:{name}", "building", name, f"Building {name}")
    if name not in site.clients:
        known = ", ".join(sorted(site.clients)) or "none"
        raise InputError(f"scope {text!r}: the contracts have no client {name!r} (clients: {known})")
    return Scope(f"client:{name}", "client", name, client_label(site, name))


def client_label(site: SiteConfig, client_id: str) -> str:
    """A client in words: "Acme Logistics GmbH (C001)", or "Client C001" when the contracts give no name."""
    contract = site.clients.get(client_id)
    if contract is None or not contract.name or contract.name == client_id:
        return f"Client {client_id}"
    return f"{contract.name} ({client_id})"
