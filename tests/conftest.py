"""Test-wide settings. Under CI (CI=true, as .ci/run is run) hypothesis draws the same examples
every run, so a landing never depends on which inputs a random search happened to try; locally it
keeps searching afresh, which is how the flaky cases it found were found."""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
