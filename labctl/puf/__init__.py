"""PUF on ReRAM arrays: responses, enrollment and key reconstruction (robust code-offset fuzzy
extractor: BCH x repetition, HKDF, helper data authenticated by HMAC), ISO/IEC 20897-style metrics and
NIST SP 800-90B health tests and min-entropy estimators. See docs/puf.md.

The public names are loaded on first use (PEP 562), so that `labctl --help`, which imports the CLI
module of this package, does not pay for scipy.stats and the coding libraries.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EnrollParams": "labctl.puf.enroll", "EnrollmentError": "labctl.puf.enroll", "enroll": "labctl.puf.enroll",
    "reconstruct": "labctl.puf.enroll", "KeyReconstructionError": "labctl.puf.extractor",
    "HealthTestFailure": "labctl.puf.health", "HelperData": "labctl.puf.helper",
    "HelperDataError": "labctl.puf.helper",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'labctl.puf' has no attribute {name!r}")
