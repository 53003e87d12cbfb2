"""Message definitions and ids for the stand-in, loaded once with vpp_papi's own codec."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpp_papi.vpp_papi import VPPApiJSONFiles

from plugins.vpp.apidefs import bundled_api_dir

# vpp_papi's socket transport hard-codes these two ids for the handshake.
SOCKCLNT_CREATE_ID = 15
SOCKCLNT_CREATE_REPLY_ID = 16


@dataclass(frozen=True)
class MessageCatalog:
    """Every message of the API with the id this stand-in gives it."""

    messages: dict[str, Any]
    services: dict[str, dict[str, Any]]
    id_by_name: dict[str, int]
    name_by_id: dict[int, str]

    def table(self) -> list[dict[str, Any]]:
        """The ``sockclnt_create_reply`` message table: ``name_crc`` and index."""
        return [
            {"index": i, "name": f"{name}_{self.messages[name].crc[2:]}"}
            for name, i in sorted(self.id_by_name.items(), key=lambda kv: kv[1])
        ]

    def pack(self, name: str, fields: dict[str, Any]) -> bytes:
        data = dict(fields)
        data["_vl_msg_id"] = self.id_by_name[name]
        packed: bytes = self.messages[name].pack(data)
        return packed


@functools.cache
def load_catalog(api_dir: str) -> MessageCatalog:
    """Load all ``*.api.json`` under ``api_dir`` and number the messages deterministically."""
    _files, messages, services = VPPApiJSONFiles.load_api(apidir=[api_dir])
    if "sockclnt_create" not in messages:
        raise ValueError(f"{api_dir}: no memclnt.api.json (sockclnt_create) found")
    id_by_name = {
        "sockclnt_create": SOCKCLNT_CREATE_ID,
        "sockclnt_create_reply": SOCKCLNT_CREATE_REPLY_ID,
    }
    next_id = 1
    for name in sorted(messages):
        if name in id_by_name:
            continue
        while next_id in (SOCKCLNT_CREATE_ID, SOCKCLNT_CREATE_REPLY_ID):
            next_id += 1
        id_by_name[name] = next_id
        next_id += 1
    return MessageCatalog(
        messages=messages,
        services=services,
        id_by_name=id_by_name,
        name_by_id={i: n for n, i in id_by_name.items()},
    )


def repo_api_dir() -> Path:
    """The definitions shipped in the package (``plugins/vpp/api``): what the stand-in speaks."""
    return Path(bundled_api_dir())
