"""An example third-party plugin, installed separately and enabled from the app's YAML."""
