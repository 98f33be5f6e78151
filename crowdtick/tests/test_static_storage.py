"""Production's static storage: whitenoise's hashed URLs, each built once per process."""

import json

import pytest
from whitenoise.storage import CompressedManifestStaticFilesStorage

from crowdtick.static_storage import ManifestStaticFilesStorage


@pytest.fixture
def static_root(tmp_path):
    manifest = {"version": "1.1", "hash": "x", "paths": {"css/crowdtick.css": "css/crowdtick.0123abcd.css"}}
    (tmp_path / "staticfiles.json").write_text(json.dumps(manifest))
    return tmp_path


def test_each_url_is_whitenoise_s_own_and_a_missing_file_still_fails_loudly(static_root):
    storage = ManifestStaticFilesStorage(location=static_root, base_url="/static/")
    whitenoise = CompressedManifestStaticFilesStorage(location=static_root, base_url="/static/")

    hashed = "/static/css/crowdtick.0123abcd.css"
    assert storage.url("css/crowdtick.css") == whitenoise.url("css/crowdtick.css") == hashed
    storage.hashed_files.clear()  # built once: the manifest is not read again for a name already asked
    assert storage.url("css/crowdtick.css") == hashed
    for _ in range(2):  # a name missing from the manifest is never remembered as if it were there
        with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
            storage.url("css/missing.css")
