"""Campaigns: validated campaign files, the runner, the SQLite store, MQTT telemetry and reports.

Importing the package imports none of them (so `labctl --help` stays instant and loads no backend):
each public name below is loaded from its module on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Campaign": "labctl.campaigns.schema",
    "CampaignError": "labctl.campaigns.problems",
    **dict.fromkeys(("LoadedCampaign", "load_campaign"), "labctl.campaigns.plan"),
    **dict.fromkeys(("RunControl", "Runner", "RunResult"), "labctl.campaigns.runner"),
    **dict.fromkeys(("DEFAULT_STORE", "Store"), "labctl.campaigns.store"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labctl.campaigns' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
