"""bookshelf's HTTP layer: the app factory and its settings."""

from api.app import create_app
from api.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "create_app"]
