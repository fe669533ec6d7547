//! Rules: `rules.json` (CASA format), CEL compilation and evaluation, per-session scoring.
