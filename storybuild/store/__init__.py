"""The store: content-addressed objects, the action cache, the state DB, the lock, build/."""
