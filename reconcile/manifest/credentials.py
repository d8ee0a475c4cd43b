"""The rules for `credentials`: names of environment variables, never the secrets themselves.

A name is letters, digits and '_' (not starting with a digit), and must not look like a key or
token pasted in its place. A refused value is never repeated in a message: it may be a secret.
"""

from __future__ import annotations

import itertools
import re

#: Each platform's own variable names, for examples and hints (API.md: the SDKs' names).
ENV_EXAMPLES: dict[str, dict[str, str]] = {
    "fabric": {
        "token_env": "FABRIC_TOKEN",
        "ak_env": "HUAWEICLOUD_SDK_AK",
        "sk_env": "HUAWEICLOUD_SDK_SK",
        "security_token_env": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    },
    "qianfan": {"ak_env": "QIANFAN_ACCESS_KEY", "sk_env": "QIANFAN_SECRET_KEY"},
}
#: The keys each platform's signing uses (Qianfan signs with AK/SK only: `bce-auth-v1`).
SUPPORTED_KEYS = {
    "fabric": frozenset(ENV_EXAMPLES["fabric"]),
    "qianfan": frozenset(ENV_EXAMPLES["qianfan"]),
}

#: Words of a name longer than this are keys or tokens: a Huawei AK is 20 characters, an SK 40, a
#: Qianfan AK or SK 32, an IAM token thousands. The words of a real name are shorter.
_LONGEST_WORD = 19
#: Longer names than this are not names at all (a token in base64url can hold '_').
_LONGEST_NAME = 100
#: An IAM token (a CMS structure in base64) starts with these letters.
_TOKEN_PREFIX = "MII"
_VOWELS = frozenset("AEIOUaeiou")
_CLASSES = (str.isupper, str.islower, str.isdigit)


def credentials_example(provider_type: str) -> str:
    names = ENV_EXAMPLES.get(provider_type, ENV_EXAMPLES["fabric"])
    return f'{{ ak_env = "{names["ak_env"]}", sk_env = "{names["sk_env"]}" }}'


def secret_hint(key: str, provider_type: str | None) -> str:
    """How to fix a value of `key` that is not a variable's name, in the platform's own names."""
    names = ENV_EXAMPLES.get(provider_type or "fabric", ENV_EXAMPLES["fabric"])
    example = names.get(key, "MY_SECRET")
    return (
        f'write {key} = "{example}" and export the secret in that variable; if a real secret was '
        "written here, rotate it: it may already be in version control"
    )


def looks_like_secret(value: str) -> bool:
    """A key or token pasted where a variable's name belongs (the name pattern let it through).

    Names are words joined by '_' (`HUAWEICLOUD_SDK_AK`, `FABRIC_TOKEN_2024`); keys and tokens are
    long runs of random letters and digits (`HPUAK3X9ZB7LMN2RT4WQ`, `MIIEvQIBADAN...`). A name of
    unusual shape is refused too: renaming a variable costs less than a leaked key.
    """
    if len(value) > _LONGEST_NAME or value.startswith(_TOKEN_PREFIX):
        return True
    return any(_random_word(word) for word in value.split("_"))


def _random_word(word: str) -> bool:
    if len(word) > _LONGEST_WORD:
        return True
    if len(word) < 12:
        return False
    classes = [next((i for i, test in enumerate(_CLASSES) if test(char)), 3) for char in word]
    switches = sum(left != right for left, right in itertools.pairwise(classes))
    has_upper, has_lower = 0 in classes, 1 in classes
    if has_upper and has_lower and (2 in classes or switches * 3 >= len(word)):
        return True  # mixed case with digits, or case flipping at random (base64)
    if sum((left == 2) != (right == 2) for left, right in itertools.pairwise(classes)) >= 4:
        return True  # letters and digits interleaved (an access key)
    return len(word) >= 16 and 2 not in classes and _unpronounceable(word)


def _unpronounceable(letters: str) -> bool:
    """Letters drawn at random: under a third vowels, or a run of five without one (the words
    of names have runs of four at most: HUAWEICLOUDSDKAK, QIANFANACCESSKEY)."""
    vowels = sum(char in _VOWELS for char in letters)
    longest = max(len(run) for run in re.split("[AEIOUaeiou]", letters))
    return vowels * 3 < len(letters) or longest >= 5
