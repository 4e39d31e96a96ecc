"""pact_lightning's Hydra launcher (Hydra instantiates launchers only from the ``hydra_plugins`` namespace package)."""
