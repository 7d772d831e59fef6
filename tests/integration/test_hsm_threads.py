"""Many threads through one Hsm: the module-level lock must keep SoftHSM2 from crashing.

Without the lock, SoftHSM2 (initialised without mutexes) fails with GeneralError or segfaults
under this load (notes/libraries.md section 1.9).
"""

from __future__ import annotations

import threading

import pytest

from console.hsm import Algorithm, Hsm, verify_jws_signature
from tests.integration.conftest import HsmTarget

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]


def test_threads_generate_sign_and_list_concurrently(hsm_target: HsmTarget, hsm: Hsm) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work(i: int) -> None:
        try:
            barrier.wait(10)
            alg: Algorithm = "ES256" if i % 2 else "ES384"
            key = hsm.generate_keypair(alg, label=f"thread-{i}")
            for j in range(40):
                data = f"{i}:{j}".encode()
                verify_jws_signature(key.public_key, alg, data, hsm.sign(key.cka_id, alg, data))
                if j % 10 == 0:
                    hsm.inventory()
                    hsm.token_info()
        except BaseException as e:  # collected and re-raised below, in the test thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len([o for o in hsm.inventory() if o.object_class == "private key"]) == 6
