"""Pure domain core: Salla payloads to entities, versioning rules, money and dates. No I/O."""
