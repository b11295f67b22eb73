"""The TrtAotiModel API: typed spec/status models and the CRD generated from them."""

from trtaoti.api.models import API_VERSION, GROUP, KIND, PLURAL, VERSION, TrtAotiModel, TrtAotiModelSpec

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION", "TrtAotiModel", "TrtAotiModelSpec"]
