"""PUF on ReRAM arrays: responses, enrollment and key reconstruction (code-offset fuzzy extractor with
BCH x repetition and HKDF), ISO/IEC 20897-style metrics and NIST SP 800-90B health tests and
min-entropy estimators. See docs/puf.md."""
from labctl.puf.enroll import EnrollmentError, EnrollParams, enroll, reconstruct
from labctl.puf.extractor import KeyReconstructionError
from labctl.puf.health import HealthTestFailure
from labctl.puf.helper import HelperData, HelperDataError

__all__ = ["EnrollParams", "EnrollmentError", "HealthTestFailure", "HelperData", "HelperDataError",
           "KeyReconstructionError", "enroll", "reconstruct"]
