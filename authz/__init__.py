"""authz: an Envoy external authorization service deciding from a policy bundle."""

__version__ = "0.1.0"
