//! warden.yaml schema, validation and defaults.
