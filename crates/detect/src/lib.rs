//! Anomaly detectors: Isolation Forest and robust streaming detectors. Pure.
