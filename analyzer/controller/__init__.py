"""Where the pure core meets the adapters: run analyses with real providers and a real clock."""
