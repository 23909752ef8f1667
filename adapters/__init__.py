"""Orchestrator adapters (one sub-package per orchestrator), found through the
``ovn_hub.adapters`` entry-point group."""
