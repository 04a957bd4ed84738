"""Memory-augmented agents on memora's memories (the agent SDK issue builds this package)."""
