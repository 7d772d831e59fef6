"""HSM fixtures: each test gets a fresh SoftHSM2 token, reached directly or via `p11-kit server`.

`hsm_target` is parametrised: "direct" loads SoftHSM2 into the test process; "p11kit" serves the
token with a real `p11-kit server` and reaches it through `p11-kit-client.so`, our network HSM.

Two facts about loading modules (see `console.hsm._pkcs11`) decide how this works in one
process:
* SoftHSM2 scans its token directory at C_Initialize, so a token made by `make_softhsm_token`
  after the module was loaded is invisible until a rescan. `Hsm.open` rescans by itself when no
  handle has the module open; these fixtures close every handle after each test (and check it),
  so each test's fresh token is always found.
* p11-kit's client reads P11_KIT_SERVER_ADDRESS when the shared object is loaded. Each
  network test has its own server (the `p11kit_server` fixture) and sets the address;
  `Hsm.open` reloads the client when the address changed and no handle is open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from console.hsm import Hsm
from console.hsm._pkcs11 import Modules
from tests.softhsm import P11KitServer, SoftHsmToken


@dataclass(frozen=True)
class HsmTarget:
    kind: str  # "direct" or "p11kit"
    module: str
    token: SoftHsmToken
    server: P11KitServer | None

    @property
    def label(self) -> str:
        return self.token.label

    @property
    def user_pin(self) -> bytes:
        return self.token.user_pin.encode()

    @property
    def network(self) -> bool:
        return self.kind == "p11kit"


@pytest.fixture(params=["direct", pytest.param("p11kit", marks=pytest.mark.network_hsm)])
def hsm_target(
    request: pytest.FixtureRequest,
    make_softhsm_token: Callable[[str], SoftHsmToken],
    monkeypatch: pytest.MonkeyPatch,
) -> HsmTarget:
    if request.param == "direct":
        token = make_softhsm_token("hsm")
        return HsmTarget("direct", token.module, token, None)
    server: P11KitServer = request.getfixturevalue("p11kit_server")
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", server.address)
    assert server.client_module is not None
    return HsmTarget("p11kit", server.client_module, server.token, server)


@pytest.fixture
def direct_target(make_softhsm_token: Callable[[str], SoftHsmToken]) -> HsmTarget:
    token = make_softhsm_token("hsm")
    return HsmTarget("direct", token.module, token, None)


@pytest.fixture
def net_target(p11kit_server: P11KitServer, monkeypatch: pytest.MonkeyPatch) -> HsmTarget:
    """A fresh token behind its own `p11-kit server` only (no direct variant)."""
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", p11kit_server.address)
    assert p11kit_server.client_module is not None
    return HsmTarget("p11kit", p11kit_server.client_module, p11kit_server.token, p11kit_server)


@pytest.fixture
def hsm_factory() -> Iterator[Callable[..., Hsm]]:
    """Opens handles for a test and proves, after it, that none was left open."""
    opened: list[Hsm] = []

    def factory(target: HsmTarget, *, login: bool = True, **kwargs: object) -> Hsm:
        hsm = Hsm.open(target.module, token_label=target.label, **kwargs)  # type: ignore[arg-type]
        opened.append(hsm)
        if login:
            hsm.login(target.user_pin)
        return hsm

    yield factory
    modules = {h.module for h in opened}
    for hsm in opened:
        hsm.close()
    for module in modules:
        assert Modules.open_handles(module) == 0, f"an Hsm handle on {module} leaked"


@pytest.fixture
def hsm(hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm]) -> Hsm:
    """A logged-in handle on a fresh token (direct or via p11-kit)."""
    return hsm_factory(hsm_target)
