//! Command-line and config-file settings (pending).
