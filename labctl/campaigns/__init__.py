"""Campaigns: validated campaign files, the runner, the SQLite store, MQTT telemetry and reports."""
from labctl.campaigns.model import Campaign, CampaignError, LoadedCampaign, load_campaign
from labctl.campaigns.runner import RunControl, Runner, RunResult
from labctl.campaigns.store import DEFAULT_STORE, Store

__all__ = ["Campaign", "CampaignError", "LoadedCampaign", "load_campaign", "RunControl", "Runner", "RunResult",
           "DEFAULT_STORE", "Store"]
