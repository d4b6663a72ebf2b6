"""Our codec keeps its attribute table to itself: importing turn and running the relay leaves aioice.stun's
tables exactly as aioice ships them, for every other aioice user in the process (the doctor, tests, scripts)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def describe(stun: Any) -> dict[str, Any]:
    """aioice.stun's tables as (type, name, packer, unpacker), the functions by module and name."""
    def entry(e: Any) -> list[Any]:
        return [e[0], e[1], f"{e[2].__module__}.{e[2].__qualname__}", f"{e[3].__module__}.{e[3].__qualname__}"]
    return {"list": [entry(e) for e in stun.ATTRIBUTES],
            "by_type": sorted([t, *entry(e)] for t, e in stun.ATTRIBUTES_BY_TYPE.items()),
            "by_name": sorted([n, *entry(e)] for n, e in stun.ATTRIBUTES_BY_NAME.items())}


DESCRIBE = "from __future__ import annotations\nfrom typing import Any\n" + inspect.getsource(describe)

# Snapshots the tables before the first import of turn, imports every turn module, relays packets with
# aioice's own TURN client through our relay over UDP and TCP, then compares (same objects, same entries).
RUN_THE_RELAY = DESCRIBE + """
import asyncio, json, pkgutil, importlib
from aioice import stun
before = (list(stun.ATTRIBUTES), dict(stun.ATTRIBUTES_BY_TYPE), dict(stun.ATTRIBUTES_BY_NAME))
import turn
for module in pkgutil.walk_packages(turn.__path__, "turn."):
    if module.name != "turn.__main__":
        importlib.import_module(module.name)
from tests.turn.support import start_relay
from tests.turn.test_interop_aioice import exchange_through

async def main():
    for transport in ("udp", "tcp"):
        relay = await start_relay(tls_port=None)
        try:
            await exchange_through(("127.0.0.1", relay.config.port), transport, relay)
        finally:
            await relay.stop()

asyncio.run(main())
after = (stun.ATTRIBUTES, stun.ATTRIBUTES_BY_TYPE, stun.ATTRIBUTES_BY_NAME)
print(json.dumps({"unchanged": after == before, "tables": describe(stun)}))
"""

FRESH = DESCRIBE + """
import json
from aioice import stun
print(json.dumps(describe(stun)))
"""


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_running_the_relay_leaves_aioice_tables_as_shipped() -> None:
    fresh = json.loads(_python(FRESH))
    assert {"CHANNEL-NUMBER", "XOR-PEER-ADDRESS"} <= {entry[1] for entry in fresh["list"]}
    assert "EVEN-PORT" not in {entry[1] for entry in fresh["list"]}  # a TURN attribute only our table holds
    ran = json.loads(_python(RUN_THE_RELAY))
    assert ran["unchanged"]
    assert ran["tables"] == fresh


def test_this_process_sees_aioice_tables_as_shipped() -> None:
    """The test process has imported turn (and run relays in other tests): aioice is as a fresh one has it."""
    import aioice.stun

    import turn.stun  # noqa: F401 - the import that used to patch aioice

    assert describe(aioice.stun) == json.loads(_python(FRESH))
