"""The campaign file's public names, where callers have always imported them from.

Each job has its own module: the schema (labctl.campaigns.schema), problems with their lines
(labctl.campaigns.problems), the parameters' units (labctl.campaigns.unit_checks), the [limits] check
(labctl.campaigns.param_limits) and loading with the unit-of-work plan (labctl.campaigns.plan).
"""
from __future__ import annotations

from labctl.campaigns.plan import LoadedCampaign, Unit, load_campaign, params_json
from labctl.campaigns.problems import CampaignError, Problem, format_path
from labctl.campaigns.schema import (
    BackendSpec,
    Campaign,
    CampaignInfo,
    Limits,
    Metadata,
    Step,
    TelemetrySpec,
    step_name,
)

__all__ = ["BackendSpec", "Campaign", "CampaignError", "CampaignInfo", "Limits", "LoadedCampaign", "Metadata",
           "Problem", "Step", "TelemetrySpec", "Unit", "format_path", "load_campaign", "params_json", "step_name"]
