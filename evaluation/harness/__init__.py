"""casa evaluation harness: drive real OpenClaw against the scripted model (stdlib only)."""
