"""Benchmark: a headless quarterly rotation against the bare HSM work it needs.

Run by hand: `python -m tests.bench.bench_ceremony [--keysets 200]` (not collected by pytest).

1. One ES256 keyset: a demo workspace (own SoftHSM2 token) executes an approved
   quarterly-rotation in-process; the same process then does the same HSM operations with bare
   python-pkcs11 on the same token (log in, list objects twice, generate an EC P-256 key pair,
   two ECDSA signatures). Unlocking the officers' cards (scrypt) is timed separately and left
   out of the ratio (goal <= 2x).
2. N keysets: a demo workspace whose policy has N ES256 keysets; one quarterly rotation over
   all of them, with the time spent inside HSM calls measured by wrapping the `Hsm` methods;
   reported as seconds per keyset beyond the HSM's own time (goal < 20 ms).

Each part runs in its own subprocess: SoftHSM2 reads SOFTHSM2_CONF once per process.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.bench import Result, print_table

RATIO_GOAL = 2.0
PER_KEYSET_GOAL_S = 0.020
FAST_KDF = 2**10


def _many_policy(n: int) -> str:
    parts = []
    for i in range(n):
        name = f"ks-{i:03d}"
        parts.append(f"""
[keysets.{name}]
issuer = "https://bench.example/{name}"
alg = "ES256"
cryptoperiod = "90d"
max_token_lifetime = "1h"
clock_skew = "1m"
margin = "1d"
destruction_wait = "30d"
bundle_lifetime = "120d"

[[keysets.{name}.consumers]]
name = "envoy-edge"
type = "envoy"
cache_lifetime = "10m"
""")
    return "".join(parts)


def _build(root: Path, keysets: int | None) -> None:
    import console.ceremony.demo as demo

    if keysets is not None:
        demo.DEMO_POLICY = _many_policy(keysets)  # the demo builder takes its policy from here
    demo.run_demo(root, progress=lambda _m: None, unsafe_kdf_cost_for_tests=FAST_KDF)


def _unlock(ws: Any, names: tuple[str, ...]) -> tuple[list[Any], float]:
    from console.ceremony.officers import unlock_officer_card

    started = time.perf_counter()
    cards = []
    for name in names:
        card, secret = ws.demo_card(name)
        cards.append(unlock_officer_card(name, card, secret.read_text().rstrip("\n")))
    return cards, time.perf_counter() - started


class _HsmTimer:
    """Wraps the HSM handle's methods and adds up the time spent in them."""

    METHODS = ("login", "inventory", "find", "random_id", "generate_keypair", "sign",
               "audit_key", "public_key", "key_uri", "destroy_keypair")

    def __init__(self, hsm: Any) -> None:
        self.seconds = 0.0
        self.calls: dict[str, int] = {}
        for name in self.METHODS:
            if hasattr(hsm, name):
                setattr(hsm, name, self._wrap(name, getattr(hsm, name)))

    def _wrap(self, name: str, method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def _rotate(root: Path) -> dict[str, Any]:
    """Plan, approve and execute a quarterly rotation in-process; returns timings."""
    from console.ceremony.service import approve_plan, execute_plan, plan_ceremony

    from console.workspace import Workspace

    ws = Workspace.open(root)
    try:
        cards, kdf = _unlock(ws, ("alice", "bob"))
        now = ws.ledger.last_time() + timedelta(days=91)
        hsm = ws.hsm()  # opened (module loaded) before timing, as a running console has it
        timer = _HsmTimer(hsm)
        started = time.perf_counter()
        planned = plan_ceremony(ws, "quarterly-rotation", keysets=[], now=now, parameters=[])
        for card in cards:
            approve_plan(ws, planned.plan_id, card, now=now)
        execute_plan(ws, planned.plan_id, cards, now=now)
        total = time.perf_counter() - started
        return {"total_s": total, "kdf_s": kdf, "hsm_s": timer.seconds, "calls": timer.calls,
                "keysets": len(planned.plan["keysets"]), "ledger_size": ws.ledger.size}
    finally:
        ws.close()


def _bare(root: Path) -> float:
    """The same HSM work with python-pkcs11 alone, on the same token."""
    import pkcs11
    from pkcs11 import KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    from console.quorum.pin_gate import open_pin
    from console.workspace import Workspace

    ws = Workspace.open(root)
    cards, _ = _unlock(ws, ("alice", "bob"))
    pin = open_pin(ws.sealed_pin_path.read_bytes(), cards)
    module = ws.module_path()
    ws.close()
    # The console already initialised the module in this process; share its library object.
    from console.hsm._pkcs11 import Modules

    lib: Any = Modules.load(module)
    token = lib.get_token(token_label="demo-token")
    started = time.perf_counter()
    with token.open(rw=True, user_pin=pin.decode()) as session:
        for _ in range(2):
            list(session.get_objects({pkcs11.Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
            list(session.get_objects({pkcs11.Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
        params = session.create_domain_parameters(
            KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True)
        _public, private = params.generate_keypair(store=True, label="bare-bench",
                                                   id=b"bare-bench-0001")
        for i in range(2):
            digest = hashlib.sha256(f"message {i}".encode()).digest()  # as SoftHSM2 wants it
            private.sign(digest, mechanism=Mechanism.ECDSA)
    return time.perf_counter() - started


def _part_one() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-ceremony-")) / "demo"
    _build(root, None)
    rotation = _rotate(root)
    bare = min(_bare(root) for _ in range(3))
    ceremony = rotation["total_s"]
    return {**rotation, "bare_s": bare, "ratio": ceremony / bare if bare else float("inf")}


def _part_many(n: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-ceremony-many-")) / "demo"
    started = time.perf_counter()
    _build(root, n)
    build = time.perf_counter() - started
    rotation = _rotate(root)
    beyond = (rotation["total_s"] - rotation["hsm_s"]) / max(rotation["keysets"], 1)
    return {**rotation, "build_s": build, "per_keyset_beyond_hsm_s": beyond}


def _child(part: str, keysets: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "tests.bench.bench_ceremony", "--part", part,
                          "--keysets", str(keysets)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench part {part} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(*, keysets: int = 200) -> list[Result]:
    """The one-keyset ratio to bare python-pkcs11, and the cost per keyset over `keysets`."""
    one = _child("one", keysets)
    print("quarterly rotation, 1 ES256 keyset (headless, in-process):")
    print(f"  ceremony (plan+approve+execute, KDF excluded) {one['total_s'] * 1000:8.1f} ms")
    print(f"    of which inside HSM calls                   {one['hsm_s'] * 1000:8.1f} ms"
          f"  {one['calls']}")
    print(f"  card unlocking (scrypt, 2 officers, excluded) {one['kdf_s'] * 1000:8.1f} ms")
    print(f"  bare python-pkcs11, same HSM operations       {one['bare_s'] * 1000:8.1f} ms")
    verdict = "ok" if one["ratio"] <= RATIO_GOAL else "OVER GOAL"
    print(f"  ratio {one['ratio']:.2f}x (goal <= {RATIO_GOAL:.0f}x): {verdict}")

    many = _child("many", keysets)
    per = many["per_keyset_beyond_hsm_s"]
    print(f"quarterly rotation over {many['keysets']} keysets "
          f"(workspace built in {many['build_s']:.1f} s):")
    print(f"  total {many['total_s']:.2f} s, inside HSM calls {many['hsm_s']:.2f} s, "
          f"ledger now {many['ledger_size']} entries")
    verdict = "ok" if per < PER_KEYSET_GOAL_S else "OVER GOAL"
    print(f"  {per * 1000:.1f} ms per keyset beyond the HSM's own time "
          f"(goal < {PER_KEYSET_GOAL_S * 1000:.0f} ms): {verdict}")
    return [
        Result.at_most("rotation of 1 keyset / bare python-pkcs11", one["ratio"], RATIO_GOAL),
        Result.below(f"rotation of {many['keysets']} keysets, per keyset beyond HSM time",
                     per * 1000, PER_KEYSET_GOAL_S * 1000, " ms", digits=1),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keysets", type=int, default=200)
    parser.add_argument("--part", choices=("one", "many"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part == "one":
        print(json.dumps(_part_one()))
        return 0
    if args.part == "many":
        print(json.dumps(_part_many(args.keysets)))
        return 0
    print_table("bench_ceremony", run(keysets=args.keysets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
