"""Campaigns: validated campaign files, the runner, the SQLite store, MQTT telemetry and reports."""
from labctl.campaigns.plan import LoadedCampaign, load_campaign
from labctl.campaigns.problems import CampaignError
from labctl.campaigns.schema import Campaign
from labctl.campaigns.runner import RunControl, Runner, RunResult
from labctl.campaigns.store import DEFAULT_STORE, Store

__all__ = ["Campaign", "CampaignError", "LoadedCampaign", "load_campaign", "RunControl", "Runner", "RunResult",
           "DEFAULT_STORE", "Store"]
