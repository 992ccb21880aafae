"""A local Salla Admin API emulator: a test double for historical sync, not in the bundle."""
