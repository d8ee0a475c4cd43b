"""A key or token pasted where a variable's name belongs is never echoed at run time.

`credentials = { token_env = "MIIZ..." }` (an IAM token) or `ak_env = "QTWAOYTTINDUT2QVKYUC"`
(an access key) pass as variable names; "environment variable MIIZ... is not set" would then print
the secret. The message names the manifest field instead (the loader refuses such names too; this
is the runtime side, for manifests that reach it).
"""

from __future__ import annotations

import pytest

from reconcile.errors import ReconcileError
from reconcile.manifest import Credentials
from reconcile.providers import PLATFORMS
from reconcile.wiring import looks_like_a_secret, read_keys

PASTED = [
    "MIIZkQYJKoZIhvcNAQcCoIIZgjCCGX4CAQExDTALBglghkgBZQMEAgEw",  # an IAM (PKI) token
    "QTWAOYTTINDUT2QVKYUC",  # a Huawei access key
    "QTWAOYTTINDUTQVKYUCZ",  # letters only, as long as one
    "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",  # a Huawei secret key
    "0123456789abcdef0123456789abcdef",  # a Qianfan-like hex key
    "eyJhbGciOiJIUzI1NiJ9",  # the start of a JWT
    "secrets-Fabric-SK-Jq8Vw2Nz5Lp",  # not a name at all
    "Jq8Vw2Nz5Lp",  # mixed case, as random text is
]
NAMES = ["HUAWEICLOUD_SDK_AK", "QIANFAN_ACCESS_KEY", "RECONCILE_TEST_TOKEN", "my_token_2", "SK"]


@pytest.mark.parametrize("pasted", PASTED)
@pytest.mark.parametrize("field", ["token_env", "ak_env", "sk_env"])
def test_a_pasted_secret_is_not_echoed_and_the_field_is_named(pasted: str, field: str) -> None:
    assert looks_like_a_secret(pasted)
    names = {"token_env": None, "ak_env": "FABRIC_AK", "sk_env": "FABRIC_SK"}
    if field == "token_env":
        names = {"token_env": pasted, "ak_env": None, "sk_env": None}
    else:
        names[field] = pasted
    credentials = Credentials.model_construct(**names, security_token_env=None)
    env = {"FABRIC_AK": "ak-value", "FABRIC_SK": "sk-value"}
    with pytest.raises(ReconcileError) as caught:
        read_keys("fab", credentials, PLATFORMS["fabric"], env)
    shown = str(caught.value)
    assert pasted not in shown
    assert f"providers.fab.credentials.{field}" in shown
    assert "looks like a key or token" in shown


@pytest.mark.parametrize("pasted", PASTED)
def test_nor_when_its_value_is_unusable(pasted: str) -> None:
    credentials = Credentials.model_construct(
        token_env=pasted, ak_env=None, sk_env=None, security_token_env=None
    )
    with pytest.raises(ReconcileError) as caught:
        read_keys("fab", credentials, PLATFORMS["fabric"], {pasted: "value\r"})
    assert pasted not in str(caught.value)


@pytest.mark.parametrize("name", NAMES)
def test_a_real_variable_name_is_still_named(name: str) -> None:
    assert not looks_like_a_secret(name)
    credentials = Credentials.model_construct(
        token_env=name, ak_env=None, sk_env=None, security_token_env=None
    )
    with pytest.raises(ReconcileError, match=f"environment variable {name} "):
        read_keys("fab", credentials, PLATFORMS["fabric"], {})
