"""The shop bundle (``shop_bundle/``) and the keys its tests sign with."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.policy.bundles import SigningKey

SHOP = Path(__file__).parent / "shop_bundle"


@dataclass(frozen=True)
class Keys:
    """The trusted key, an untrusted one under the same kid, and one under another kid."""

    trusted: SigningKey
    impostor: SigningKey
    unknown_kid: SigningKey

    @classmethod
    def generate(cls, factory: pytest.TempPathFactory) -> Keys:
        """Three new key pairs in temporary directories."""
        return cls(
            SigningKey.generate(factory.mktemp("trusted")),
            SigningKey.generate(factory.mktemp("impostor")),
            SigningKey.generate(factory.mktemp("other"), kid="other-kid"),
        )


def install_shop(root: Path, key: SigningKey) -> Path:
    """A copy of the shop bundle at ``root`` that trusts ``key``."""
    shutil.copytree(SHOP, root)
    (root / "keys").mkdir()
    shutil.copyfile(key.jwks_path, root / "keys" / "jwks.json")
    return root
