//! Correlation of anomalies into incidents: grouping, dedup. Pure.
