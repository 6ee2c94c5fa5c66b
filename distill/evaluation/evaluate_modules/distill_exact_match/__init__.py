"""Package marker so setuptools ships the metric script in this folder."""
