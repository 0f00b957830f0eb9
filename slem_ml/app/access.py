"""Who is signed in and what they may see; table cells for people (the app's base for its actions).

:func:`user_of` resolves the signed-in name (or the open local mode of ``slem serve``), :func:`view_of` the
month they see (:func:`slem_ml.app.views.period_view`), :func:`require` refuses when nothing is stored
yet, and :func:`display` turns a frame into cells a table shows exactly.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from slem_ml.app.views import RunView, period_view
from slem_ml.app.workspace import AppConfig
from slem_ml.errors import SlemError
from slem_ml.storage import open_database
from slem_ml.storage.users import User, count_users, get_user, role_allows

__all__ = ["display", "may_upload", "require", "user_of", "view_of"]


def user_of(config: AppConfig, username: str | None) -> User:
    engine = open_database(config.database_url)
    try:
        if config.open_user is not None and username == config.open_user:
            if count_users(engine):  # the open mode ends once someone has an account
                raise SlemError("users have been added: restart `slem serve` so that everyone signs in")
            return User(config.open_user, "admin", None, dt.datetime.now(dt.UTC))
        if not username:
            raise SlemError("sign in first")
        user = get_user(engine, username)
    finally:
        engine.dispose()
    if user is None:
        raise SlemError(f"no user {username!r}: ask an admin to run `slem users add`")
    return user


def may_upload(config: AppConfig, username: str | None) -> bool:
    """Whether ``username`` (``None``: nobody signed in) may upload readings now: a manager or admin who
    sees every client (an upload bills them all). Checked before Gradio stores a byte of an upload."""
    try:
        user = user_of(config, username)
    except SlemError:
        return False
    return role_allows(user, "upload") and user.client_id is None


def view_of(config: AppConfig, username: str | None, period: str | None = None) -> RunView | None:
    return period_view(config, user_of(config, username), period or None)


def require(view: RunView | None) -> RunView:
    if view is None:
        raise SlemError("nothing scored yet: upload readings on the Upload tab")
    return view


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells as text where JSON has no exact type: money and energy keep their decimals, times their
    offset; floats are rounded for reading."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[column] = values.dt.strftime("%Y-%m-%d %H:%M%z").fillna("")
        elif pd.api.types.is_float_dtype(values):
            out[column] = values.round(3)
        elif values.dtype == object or isinstance(values.dtype, pd.CategoricalDtype):
            out[column] = values.astype(str).where(values.notna(), "")
    return out
