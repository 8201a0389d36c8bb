"""The control-plane VIP (`cp_enable`): one election for both families, held while the local API is up."""
