"""The trained models as one unit: a joblib bundle with a JSON manifest (SPEC §5 "exported to models/").

``models/slem-models.joblib`` holds the :class:`ModelBundle`; ``models/manifest.json`` says what it is
(features, versions of slem and of the libraries, the training-data fingerprint, the backtest metrics) so a
reader can tell without unpickling. Loading checks the manifest first and refuses a bundle written by an
incompatible schema with a message that says to run ``slem train``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from slem_ml.atomic import atomic_path
from slem_ml.errors import ConfigError

__all__ = [
    "BUNDLE_FILE",
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "ModelBundle",
    "legacy_module_names",
    "library_versions",
    "load_bundle",
    "read_manifest",
    "save_bundle",
]

BUNDLE_FILE = "slem-models.joblib"
MANIFEST_FILE = "manifest.json"
#: Bumped whenever the bundle's classes or features change incompatibly.
SCHEMA_VERSION = 1
_LIBRARIES = ("slem", "numpy", "pandas", "scikit-learn", "lightgbm", "joblib")


@dataclass
class ModelBundle:
    """Everything scoring and forecasting need from training.

    ``forecaster`` is a fitted :class:`slem_ml.models.forecaster.ZoneForecaster`; ``spike`` and ``drift`` the
    fitted detectors of :mod:`slem_ml.models.anomaly` and :mod:`slem_ml.models.drift`; ``sessions`` the fitted
    :class:`slem_ml.models.session_classifier.SessionClassifier` (``None`` when the training data had no
    cleaning flag to learn from). ``manifest`` is the JSON-ready description written beside the bundle.
    """

    forecaster: Any
    spike: Any
    drift: Any
    sessions: Any | None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """How a run names the models it used: registry version, or the fingerprint when exported only."""
        registered = self.manifest.get("registered_version")
        if registered:
            return f"{self.manifest.get('registered_name', 'slem')} v{registered}"
        return f"bundle {str(self.manifest.get('data_fingerprint', ''))[:12]}"


def library_versions() -> dict[str, str]:
    """Installed versions of slem and the libraries a bundle depends on."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write the bundle and its manifest into ``directory`` atomically; the bundle's path."""
    import joblib  # lazy: scoring without models never needs it

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": SCHEMA_VERSION, "libraries": library_versions()} | bundle.manifest
    bundle.manifest = manifest
    for name, write in (
        (BUNDLE_FILE, lambda path: joblib.dump(bundle, path, compress=3)),
        (
            MANIFEST_FILE,
            lambda path: Path(path).write_text(json.dumps(manifest, indent=2, default=str) + "\n"),
        ),
    ):
        with atomic_path(folder / name, mode=0o600) as temp:  # a pickle: its owner's only
            write(temp)
    return folder / BUNDLE_FILE


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest in ``directory``, or ``None`` when there is no exported bundle."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file() or not (Path(directory) / BUNDLE_FILE).is_file():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        reason = f"{path}: unreadable model manifest ({exc})"
        raise ConfigError(f"{reason}; run `slem train` again", reason=reason) from None
    return manifest


def load_bundle(directory: str | Path) -> ModelBundle | None:
    """The exported bundle in ``directory``; ``None`` when there is none.

    Only load bundles you wrote yourself: joblib files are pickles and run code when loaded.
    """
    import joblib  # lazy: scoring without models never needs it

    manifest = read_manifest(directory)
    if manifest is None:
        return None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        reason = (
            f"{Path(directory) / BUNDLE_FILE} was written by another slem model schema "
            f"({manifest.get('schema_version')} ≠ {SCHEMA_VERSION})"
        )
        raise ConfigError(f"{reason}; run `slem train` again", reason=reason)
    with legacy_module_names():
        bundle = joblib.load(Path(directory) / BUNDLE_FILE)
    if not isinstance(bundle, ModelBundle):
        reason = f"{Path(directory) / BUNDLE_FILE} is not a slem model bundle"
        raise ConfigError(f"{reason}; run `slem train`", reason=reason)
    return bundle


#: Where the classes a bundle pickles lived before slem's modules moved into subpackages (0.1 → layout of
#: issue 11), so that a champion trained before the move still loads.
_MOVED_MODULES = {
    "slem_ml.anomaly": "slem_ml.models.anomaly",
    "slem_ml.bundle": "slem_ml.models.bundle",
    "slem_ml.contracts": "slem_ml.config.site",
    "slem_ml.drift": "slem_ml.models.drift",
    "slem_ml.features": "slem_ml.models.features",
    "slem_ml.forecaster": "slem_ml.models.forecaster",
    "slem_ml.schema": "slem_ml.io.schema",
    "slem_ml.session_classifier": "slem_ml.models.session_classifier",
}


@contextlib.contextmanager
def legacy_module_names() -> Iterator[None]:
    """While unpickling: the modules of :data:`_MOVED_MODULES` also answer to their old names."""
    added = [old for old in _MOVED_MODULES if old not in sys.modules]
    for old in added:
        sys.modules[old] = importlib.import_module(_MOVED_MODULES[old])
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
