"""The domain: artifact and event types, identities and subscriptions. Pure: no I/O."""
